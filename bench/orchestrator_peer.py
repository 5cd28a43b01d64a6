"""Orchestrator's side of the side-by-side benchmarks, with the same commands as the peers.

    python bench/orchestrator_peer.py seed URL JOBS [write]
    python bench/orchestrator_peer.py drain URL BATCH_SIZE CONCURRENCY [write]
    python bench/orchestrator_peer.py enqueue URL COUNT INTERVAL_SECONDS

- `seed` inserts JOBS pending no-op jobs in one statement (Orchestrator has no bulk
  enqueue; the rows are what `job_enqueue` writes); with `write`, jobs of
  `bench.write`, whose handler inserts one row through the ORM (bench_handlers.py);
- `drain` sets Django up and connects, prints READY, waits for "go" on stdin, drains
  the queue once with the product's runner (`jobs_run`, as `manage.py run_jobs` does;
  CONCURRENCY 0 means the JOBS_CONCURRENCY setting) and prints
  `RESULT {"done": ..., "started": ..., "finished": ..., "cpu": ...}` (time.monotonic
  seconds; CPU seconds of the process); with `write`, under the bench settings, which
  register the write jobs' handler;
- `enqueue` enqueues COUNT single `bench.pickup` jobs INTERVAL_SECONDS apart through
  the product's enqueue service and prints `RESULT {"sent": {n: monotonic time just
  before the enqueue call}}`. The standing worker that runs them is the operator's
  `manage.py run_jobs --loop` (bench/pickup_latency.py starts it).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import product  # noqa: E402
from common import ROOT, setup_django  # noqa: E402
from stamps import paced  # noqa: E402

SEED = (
    f"INSERT INTO {product.JOBS_TABLE} (tenant, kind, payload, status, priority, attempts, max_attempts, run_after,"
    " locked_by, last_error, created_at)"
    " SELECT '', '{kind}', '{{}}'::jsonb, 'pending', 0, 0, 5, now() - interval '1 second', '', '',"
    " now() FROM generate_series(1, {jobs})"
)
PICKUP_KIND = "bench.pickup"  # registered by bench_handlers.py
WRITE_KIND = "bench.write"  # registered by bench_handlers.py


def seed(url: str, jobs: int, *, write: bool) -> None:
    from common import run_psql

    run_psql(url, seed_statement(jobs, write=write))


def seed_statement(jobs: int, *, write: bool = False) -> str:
    """Return the statement that inserts `jobs` pending jobs: no-ops, or with `write` jobs of `bench.write`."""
    return SEED.format(kind=WRITE_KIND if write else product.NOOP_KIND, jobs=jobs)


def drain(url: str, batch_size: int, concurrency: int, *, write: bool) -> None:
    setup_django(url, **({"settings": "bench_settings"} if write else {}))
    from django.db import connection

    connection.ensure_connection()
    print("READY", flush=True)
    sys.stdin.readline()
    started, cpu = time.monotonic(), time.process_time()
    summary = product.jobs_run(budget_seconds=600, batch_size=batch_size, concurrency=concurrency or None)
    finished = time.monotonic()
    print(
        "RESULT "
        + json.dumps(
            {"done": summary["succeeded"], "started": started, "finished": finished, "cpu": time.process_time() - cpu}
        ),
        flush=True,
    )


def enqueue(url: str, count: int, interval: float) -> None:
    setup_django(url, settings="bench_settings")
    from django.db import connection
    from django.utils import timezone

    connection.ensure_connection()
    sent = {}
    for number in paced(count, interval):
        sent[number] = time.monotonic()
        product.job_enqueue(kind=PICKUP_KIND, now=timezone.now(), payload={"n": number})
    print("RESULT " + json.dumps({"sent": sent}), flush=True)


def worker_command() -> list[str]:
    """Return the standing worker's command, as an operator runs it."""
    return [sys.executable, str(ROOT / "manage.py"), "run_jobs", "--loop"]


def worker_env(url: str, *, root: Path = ROOT) -> dict[str, str]:
    """Return the environment of a product process on `url` with the bench settings (and handlers) of `root`.

    No REDIS_URL: the cache is local memory, as in the drain workers (common.setup_django).
    """
    env = {name: value for name, value in os.environ.items() if name != "REDIS_URL"}
    return {
        **env,
        "PYTHONPATH": f"{root / 'bench'}:{root}",
        "DJANGO_SETTINGS_MODULE": "bench_settings",
        "DATABASE_URL": url,
        "DEBUG": "false",
        "SECRET_KEY": "bench-secret-key-" + "x" * 40,
        "LOG_LEVEL": "WARNING",
    }


def main() -> None:
    command, url, *args = sys.argv[1:]
    write = args[-1:] == ["write"]
    if command == "seed":
        seed(url, int(args[0]), write=write)
    elif command == "drain":
        drain(url, int(args[0]), int(args[1]), write=write)
    elif command == "enqueue":
        enqueue(url, int(args[0]), float(args[1]))
    else:
        sys.exit(f"unknown command {command!r}: use seed, drain or enqueue")


if __name__ == "__main__":
    main()
