"""The queues compared side by side, and one drain run measured alike for each.

Each system has a script with the same commands (`install`, `seed`, `drain`, and for
bench/pickup_latency.py `listen`/`enqueue`) and its own tables. A drain run is the same
for all: empty the system's tables, seed JOBS no-op jobs with its own bulk insert,
VACUUM ANALYZE its tables and CHECKPOINT (common.prepare_tables), start its worker
processes, wait until each has said READY (set up and connected), say "go" to all, and
count from the first "go" to the last job done.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import product
from common import ROOT, prepare_tables, run_psql, scratch_database


@dataclass(frozen=True)
class Peer:
    script: str
    tables: tuple[str, ...]


PEERS = {
    "orchestrator": Peer("orchestrator_peer.py", (product.JOBS_TABLE,)),
    "pgqueuer": Peer("pgqueuer_peer.py", ("pgqueuer", "pgqueuer_log")),
    "procrastinate": Peer("procrastinate_peer.py", ("procrastinate_jobs", "procrastinate_events")),
}


def command(system: str, *args: object) -> list[str]:
    """Return the command line of `system`'s bench script with `args`."""
    return [sys.executable, str(ROOT / "bench" / PEERS[system].script), *(str(arg) for arg in args)]


def install(system: str, database: str) -> str:
    """(Re)create scratch database `database` with `system`'s schema; return its URL."""
    url = scratch_database(database)
    if system == "orchestrator":
        from orchestrator_peer import worker_env

        migrate = [sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"]
        subprocess.run(migrate, env=worker_env(url), check=True, cwd=ROOT)
    else:
        subprocess.run(command(system, "install", url), check=True, cwd=ROOT, capture_output=True)
    return url


def drain_once(
    system: str,
    url: str,
    *,
    jobs: int,
    args: tuple[object, ...],
    processes: int = 1,
    during: Callable[[], contextlib.AbstractContextManager[dict[str, Any]]] | None = None,
) -> dict[str, Any]:
    """Seed `jobs` jobs, drain them with `processes` workers of `system`; return the figures.

    The figures: `rate` (jobs/s), `seconds`, `cpu` (the workers' CPU seconds during the
    drain), and whatever `during` (entered at "go", left when the last worker is done)
    put in its dict.
    """
    peer = PEERS[system]
    run_psql(url, f"TRUNCATE {', '.join(peer.tables)} CASCADE")
    subprocess.run(command(system, "seed", url, jobs), check=True, cwd=ROOT, capture_output=True)
    prepare_tables(url, peer.tables)
    workers = [
        subprocess.Popen(
            command(system, "drain", url, *args), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT
        )
        for _ in range(processes)
    ]
    for worker in workers:
        assert worker.stdout is not None
        while (line := worker.stdout.readline()) and line.strip() != "READY":
            pass
        if not line:
            raise RuntimeError(f"{system} drain worker exited before READY (exit {worker.wait()})")
    with during() if during else _nothing() as observed:
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        results = [_result(worker, system) for worker in workers]
    done = sum(result["done"] for result in results)
    if done != jobs:
        raise RuntimeError(f"{system}: expected {jobs} jobs done, got {done}")
    seconds = max(r["finished"] for r in results) - min(r["started"] for r in results)
    return {**observed, "rate": jobs / seconds, "seconds": seconds, "cpu": sum(r["cpu"] for r in results)}


def _result(worker: subprocess.Popen[str], system: str) -> dict[str, Any]:
    out, _ = worker.communicate(timeout=900)
    if worker.returncode != 0:
        raise RuntimeError(f"{system} drain worker failed (exit {worker.returncode})")
    line = next(line for line in out.splitlines() if line.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line.removeprefix("RESULT "))
    return result


@contextlib.contextmanager
def _nothing() -> Iterator[dict[str, Any]]:
    yield {}
