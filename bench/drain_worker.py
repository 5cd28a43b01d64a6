"""One runner process for bench/queue_drain.py: set up, say READY, wait for "go", drain, report.

Usage: python bench/drain_worker.py DATABASE_URL BATCH_SIZE CONCURRENCY
Prints `RESULT {"claimed": ..., "started": <unix>, "finished": <unix>}`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import setup_django  # noqa: E402


def main() -> None:
    database_url, batch_size, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    setup_django(database_url)
    from django.db import connection

    from jobs.runner import jobs_run

    connection.ensure_connection()
    print("READY", flush=True)
    sys.stdin.readline()
    started = time.time()
    summary = jobs_run(budget_seconds=600, batch_size=batch_size, concurrency=concurrency)
    finished = time.time()
    result = {"claimed": summary.claimed, "succeeded": summary.succeeded, "started": started, "finished": finished}
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
