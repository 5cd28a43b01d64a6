"""The queues compared side by side, and one drain run measured alike for each.

Each system has a script with the same commands (`install`, `seed`, `drain`, and for
bench/pickup_latency.py `listen`/`enqueue`) and its own tables. A drain run is the same
for all: empty the system's tables, seed JOBS jobs with its own bulk insert, VACUUM
ANALYZE its tables and CHECKPOINT (common.prepare_tables), start its worker processes,
wait until each has said READY (set up and connected), say "go" to all, and count from
the first "go" to the last job done.

The jobs are no-ops, or (`shape="write"`) each inserts one row into the same table
(common.WRITES_TABLE), which the run empties first and counts after: one row per job.
Orchestrator can be added under another name (add_orchestrator): at another commit,
checked out beside this one (common.checkout) with its own product code and its own
peer script (the `baseline` of bench/queue_drain.py), or with its schema altered once
installed (a copy without an index, to measure what the index costs).
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import product
from common import (
    ROOT,
    WRITES_DDL,
    WRITES_TABLE,
    drop_database,
    interleaved,
    prepare_tables,
    run_psql,
    scratch_database,
)


@dataclass(frozen=True)
class Peer:
    script: str
    tables: tuple[str, ...]
    root: Path = ROOT  # the checkout whose bench/ holds the script (and, for Orchestrator, whose code it runs)
    alter: str = ""  # SQL run on the schema once installed


PEERS = {
    "orchestrator": Peer("orchestrator_peer.py", (product.JOBS_TABLE,)),
    "pgqueuer": Peer("pgqueuer_peer.py", ("pgqueuer", "pgqueuer_log")),
    "procrastinate": Peer("procrastinate_peer.py", ("procrastinate_jobs", "procrastinate_events")),
}


def add_orchestrator(system: str, *, root: Path = ROOT, alter: str = "") -> None:
    """Make `system` a system: Orchestrator as checked out at `root` (common.checkout), its schema then `alter`ed."""
    PEERS[system] = Peer("orchestrator_peer.py", (product.JOBS_TABLE,), root=root, alter=alter)


def command(system: str, *args: object) -> list[str]:
    """Return the command line of `system`'s bench script with `args`."""
    return [sys.executable, str(PEERS[system].root / "bench" / PEERS[system].script), *(str(arg) for arg in args)]


def install(system: str, database: str) -> str:
    """(Re)create scratch database `database` with `system`'s schema and the write jobs' table; return its URL."""
    url = scratch_database(database)
    peer = PEERS[system]
    if peer.script == "orchestrator_peer.py":
        from orchestrator_peer import worker_env

        migrate = [sys.executable, str(peer.root / "manage.py"), "migrate", "-v0"]
        subprocess.run(migrate, env=worker_env(url, root=peer.root), check=True, cwd=peer.root)
    else:
        subprocess.run(command(system, "install", url), check=True, cwd=ROOT, capture_output=True)
    run_psql(url, WRITES_DDL, *([peer.alter] if peer.alter else []))
    return url


# A drain configuration: (key, system, its worker's arguments, how a section names it).
Config = tuple[str, str, tuple[object, ...], str]


@contextlib.contextmanager
def installed(configs: Sequence[Config], *, databases: str) -> Iterator[dict[str, str]]:
    """Install each system of `configs` in its scratch database `<databases>_<system>`; yield their URLs by system.

    The databases are dropped at the end.
    """
    names = {system: f"{databases}_{system}" for _, system, _, _ in configs}
    urls = {system: install(system, database) for system, database in names.items()}
    try:
        yield urls
    finally:
        for database in names.values():
            drop_database(database)


def drain_configs(
    configs: Sequence[Config],
    *,
    urls: dict[str, str],
    jobs: int,
    repeat: int,
    shape: Literal["noop", "write"] = "noop",
) -> dict[str, list[float]]:
    """Drain `jobs` jobs with each of `configs`, interleaved over `repeat` rounds; return each config's jobs/s.

    Each system runs in its database of `urls` (installed()).
    """

    def measure(config: Config) -> float:
        key, system, args, _ = config
        rate = float(drain_once(system, urls[system], jobs=jobs, args=args, shape=shape)["rate"])
        print(f"{key}: {rate:,.0f} {'write ' if shape == 'write' else ''}jobs/s", flush=True)
        return rate

    return dict(zip((config[0] for config in configs), interleaved(configs, repeat, measure), strict=True))


def drain_once(
    system: str,
    url: str,
    *,
    jobs: int,
    args: tuple[object, ...],
    processes: int = 1,
    during: Callable[[], contextlib.AbstractContextManager[dict[str, Any]]] | None = None,
    shape: Literal["noop", "write"] = "noop",
) -> dict[str, Any]:
    """Seed `jobs` jobs of `shape`, drain them with `processes` workers of `system`; return the figures.

    The figures: `rate` (jobs/s), `seconds`, `cpu` (the workers' CPU seconds during the
    drain), and whatever `during` (entered at "go", left when the last worker is done)
    put in its dict.
    """
    peer = PEERS[system]
    tables = (*peer.tables, WRITES_TABLE) if shape == "write" else peer.tables
    shaped = ("write",) if shape == "write" else ()  # the no-op drain's command line stays what every commit knows
    run_psql(url, f"TRUNCATE {', '.join(tables)} CASCADE")
    subprocess.run(command(system, "seed", url, jobs, *shaped), check=True, cwd=ROOT, capture_output=True)
    prepare_tables(url, tables)
    workers = [
        subprocess.Popen(
            command(system, "drain", url, *args, *shaped),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
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
    written = int(run_psql(url, f"SELECT count(*) FROM {WRITES_TABLE}"))
    if written != (jobs if shape == "write" else 0):
        raise RuntimeError(f"{system}: {jobs} {shape} jobs wrote {written} rows")
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
