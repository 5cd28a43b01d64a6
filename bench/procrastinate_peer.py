"""Procrastinate as a benchmark peer, through its public API (run with bench/requirements.txt).

    python bench/procrastinate_peer.py install URL
    python bench/procrastinate_peer.py seed URL JOBS
    python bench/procrastinate_peer.py drain URL CONCURRENCY
    python bench/procrastinate_peer.py listen URL
    python bench/procrastinate_peer.py enqueue URL COUNT INTERVAL_SECONDS

One worker process with its psycopg connector and an async no-op task.

- `drain` prints READY once the app is open, waits for "go" on stdin, runs a worker
  (`wait=False`: it stops once the queue is empty; `listen_notify=False`, since the
  queue is full from the start) and prints
  `RESULT {"done": ..., "started": ..., "finished": ..., "cpu": ...}` (time.monotonic
  seconds; CPU seconds of the process);
- `listen` is an idle standing worker with Procrastinate's defaults (concurrency 1,
  LISTEN/NOTIFY on) whose task stamps each job's start (stamps.py) as its first
  line; it runs until SIGTERM;
- `enqueue` defers COUNT single jobs INTERVAL_SECONDS apart and prints
  `RESULT {"sent": {n: monotonic time just before the defer call}}`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import procrastinate

sys.path.insert(0, str(Path(__file__).resolve().parent))

from stamps import apaced, stamp  # noqa: E402

logging.basicConfig(level=logging.WARNING)
# The app is built in this script's main module on purpose (one script, one app): no warning about it.
logging.getLogger("procrastinate.blueprints").setLevel(logging.ERROR)
done = 0


def make_app(url: str) -> tuple[procrastinate.App, Any, Any]:
    """Return the app on `url` and its two tasks: the no-op and the pickup stamp."""
    app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))

    @app.task(name="noop", queue="bench")
    async def noop() -> None:
        global done
        done += 1

    @app.task(name="pickup", queue="pickup")
    async def pickup(number: int) -> None:
        started = time.monotonic()
        stamp(number, started)

    return app, noop, pickup


async def install(app: procrastinate.App) -> None:
    async with app.open_async():
        await app.schema_manager.apply_schema_async()


async def seed(app: procrastinate.App, noop: Any, jobs: int) -> None:
    """Defer JOBS no-op jobs in batches of 5,000 (Procrastinate's bulk defer)."""
    async with app.open_async():
        for start in range(0, jobs, 5000):
            await noop.batch_defer_async(*({} for _ in range(min(5000, jobs - start))))


async def drain(app: procrastinate.App, concurrency: int) -> None:
    async with app.open_async():
        print("READY", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        started, cpu = time.monotonic(), time.process_time()
        await app.run_worker_async(
            queues=["bench"], wait=False, concurrency=concurrency, listen_notify=False, delete_jobs="never"
        )
        finished = time.monotonic()
    print(
        "RESULT "
        + json.dumps({"done": done, "started": started, "finished": finished, "cpu": time.process_time() - cpu}),
        flush=True,
    )


async def listen(app: procrastinate.App) -> None:
    async with app.open_async():
        print("READY", flush=True)
        await app.run_worker_async(queues=["pickup"], delete_jobs="never")


async def enqueue(app: procrastinate.App, pickup: Any, count: int, interval: float) -> None:
    sent = {}
    async with app.open_async():
        await app.check_connection_async()
        async for number in apaced(count, interval):
            sent[number] = time.monotonic()
            await pickup.defer_async(number=number)
    print("RESULT " + json.dumps({"sent": sent}), flush=True)


def main() -> None:
    command, url, *args = sys.argv[1:]
    app, noop, pickup = make_app(url)
    work = {
        "install": lambda: install(app),
        "seed": lambda: seed(app, noop, int(args[0])),
        "drain": lambda: drain(app, int(args[0])),
        "listen": lambda: listen(app),
        "enqueue": lambda: enqueue(app, pickup, int(args[0]), float(args[1])),
    }[command]
    asyncio.run(work())


if __name__ == "__main__":
    main()
