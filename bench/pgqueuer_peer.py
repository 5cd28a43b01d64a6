"""pgqueuer as a benchmark peer, through its public API (run with bench/requirements.txt).

    python bench/pgqueuer_peer.py install URL
    python bench/pgqueuer_peer.py seed URL JOBS [write]
    python bench/pgqueuer_peer.py drain URL QUEUE_MANAGERS BATCH_SIZE [write]
    python bench/pgqueuer_peer.py listen URL
    python bench/pgqueuer_peer.py enqueue URL COUNT INTERVAL_SECONDS

Configured as pgqueuer's own benchmark tool (`tools/benchmark.py` in its repository)
configures it: the asyncpg driver, one asyncpg connection per queue manager (one
`PgQueuer` each), an async no-op entrypoint, `QueueExecutionMode.drain` to empty a
pre-filled queue, and uvloop as the event loop (the tool and `pgq run` both use it).

- `drain` prints READY once its connections are open, waits for "go" on stdin, runs
  QUEUE_MANAGERS managers of BATCH_SIZE each until the queue is empty, and prints
  `RESULT {"done": ..., "started": ..., "finished": ..., "cpu": ...}` (time.monotonic
  seconds; CPU seconds of the process); with `write` (jobs seeded so), each job
  inserts one row (common.WRITES_TABLE) through its queue manager's own connection
  (the driver serialises its statements), a transaction of its own: pgqueuer has no
  transaction that holds a job's writes and its completion together;
- `listen` is an idle standing worker with pgqueuer's defaults (one manager, batches
  of 10, woken by its NOTIFY trigger) whose handler stamps each job's start
  (stamps.py) as its first line; it runs until SIGTERM;
- `enqueue` enqueues COUNT single jobs INTERVAL_SECONDS apart and prints
  `RESULT {"sent": {n: monotonic time just before the enqueue call}}`.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import time
from pathlib import Path

import asyncpg
import uvloop
from pgqueuer import PgQueuer
from pgqueuer.db import AsyncpgDriver
from pgqueuer.models import Job
from pgqueuer.queries import Queries
from pgqueuer.types import QueueExecutionMode

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import WRITES_TABLE  # noqa: E402
from stamps import apaced, stamp  # noqa: E402

WRITE_SQL = f"INSERT INTO {WRITES_TABLE} (job_id) VALUES ($1)"  # noqa: S608 (a constant)


async def install(url: str) -> None:
    connection = await asyncpg.connect(dsn=url)
    await Queries(AsyncpgDriver(connection)).install()
    await connection.close()


async def seed(url: str, jobs: int, *, write: bool) -> None:
    """Enqueue JOBS no-op (or write) jobs in one batch, as the benchmark tool's drain strategy does."""
    connection = await asyncpg.connect(dsn=url)
    await Queries(AsyncpgDriver(connection)).enqueue(["write" if write else "noop"] * jobs, [b""] * jobs, [0] * jobs)
    await connection.close()


async def drain(url: str, managers: int, batch_size: int, *, write: bool) -> None:
    done = 0
    queues = []
    for _ in range(managers):
        driver = AsyncpgDriver(await asyncpg.connect(dsn=url))
        queue = PgQueuer(driver, queries=Queries(driver))

        @queue.entrypoint("noop")
        async def noop(job: Job) -> None:
            nonlocal done
            done += 1

        @queue.entrypoint("write")
        async def write_row(job: Job, driver: AsyncpgDriver = driver) -> None:
            nonlocal done
            await driver.execute(WRITE_SQL, job.id)
            done += 1

        queues.append(queue)
    print("READY", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    started, cpu = time.monotonic(), time.process_time()
    await asyncio.gather(*(queue.run(batch_size=batch_size, mode=QueueExecutionMode.drain) for queue in queues))
    finished = time.monotonic()
    print(
        "RESULT "
        + json.dumps({"done": done, "started": started, "finished": finished, "cpu": time.process_time() - cpu}),
        flush=True,
    )


async def listen(url: str) -> None:
    driver = AsyncpgDriver(await asyncpg.connect(dsn=url))
    queue = PgQueuer(driver, queries=Queries(driver))

    @queue.entrypoint("pickup")
    async def pickup(job: Job) -> None:
        started = time.monotonic()
        stamp(int(job.payload or b"0"), started)

    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, queue.shutdown.set)
    print("READY", flush=True)
    await queue.run()


async def enqueue(url: str, count: int, interval: float) -> None:
    queries = Queries(AsyncpgDriver(await asyncpg.connect(dsn=url)))
    sent = {}
    async for number in apaced(count, interval):
        sent[number] = time.monotonic()
        await queries.enqueue("pickup", str(number).encode())
    print("RESULT " + json.dumps({"sent": sent}), flush=True)


def main() -> None:
    command, url, *args = sys.argv[1:]
    write = args[-1:] == ["write"]
    work = {
        "install": lambda: install(url),
        "seed": lambda: seed(url, int(args[0]), write=write),
        "drain": lambda: drain(url, int(args[0]), int(args[1]), write=write),
        "listen": lambda: listen(url),
        "enqueue": lambda: enqueue(url, int(args[0]), float(args[1])),
    }[command]
    uvloop.run(work())


if __name__ == "__main__":
    main()
