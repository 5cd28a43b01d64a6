"""The same no-op workload on Procrastinate, for bench/queue_drain.py (run with bench/requirements.txt).

Usage: python bench/procrastinate_worker.py CONNINFO JOBS CONCURRENCY
Applies Procrastinate's schema to the (empty, separate) database, defers JOBS no-op
jobs, then runs one worker until the queue is empty and prints
`RESULT {"jobs": ..., "seconds": ...}` for the drain alone.
"""

from __future__ import annotations

import json
import logging
import sys
import time

import procrastinate

logging.basicConfig(level=logging.WARNING)


def main() -> None:
    conninfo, jobs, concurrency = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=conninfo))

    @app.task(name="noop", queue="bench")
    async def noop() -> None:
        return None

    with app.open():
        app.schema_manager.apply_schema()
        for start in range(0, jobs, 5000):
            noop.batch_defer(*({} for _ in range(min(5000, jobs - start))))

    started = time.perf_counter()
    app.run_worker(
        queues=["bench"],
        wait=False,
        concurrency=concurrency,
        listen_notify=False,
        install_signal_handlers=False,
        delete_jobs="never",
    )
    seconds = time.perf_counter() - started
    print("RESULT " + json.dumps({"jobs": jobs, "seconds": seconds}), flush=True)


if __name__ == "__main__":
    main()
