"""Count the SQL statements one kind of request runs, through the same settings and middleware.

    python bench/statements.py PATH_PREFIX FIRST COUNT

Run by bench/dispatch_latency.py with the server's environment (bench settings, the
scratch database, the loopback event API): Django's test client sends COUNT requests
`GET <PATH_PREFIX><number>` for number FIRST, FIRST+1, ... with the cron bearer secret,
each statement is counted by a database execute wrapper, and it prints
`RESULT {"statements": <per request>, "heads": [<each distinct statement's first words>]}`.
In autocommit, each statement is its own transaction.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import setup_django  # noqa: E402


def main() -> None:
    prefix, first, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    setup_django(os.environ["DATABASE_URL"], settings="bench_settings")
    from django.db import connection
    from django.test import Client

    heads: list[str] = []

    def count_statement(execute: Callable[..., Any], sql: str, *args: Any) -> Any:
        heads.append(" ".join(re.sub(r"\(.*", "", sql).split()[:6]))
        return execute(sql, *args)

    client = Client(headers={"Authorization": f"Bearer {os.environ['CRON_SECRET']}"})
    with connection.execute_wrapper(count_statement):
        for number in range(first, first + count):
            response = client.get(f"{prefix}{number:05d}")
            if response.status_code >= 300:
                sys.exit(f"{prefix}{number:05d} answered {response.status_code}: {response.content[:300]!r}")
    result = {"statements": len(heads) / count, "heads": list(dict.fromkeys(heads))}
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
