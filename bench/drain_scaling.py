"""Benchmark: draining with 1, 2 and 4 runner processes, and what limits each (`BENCHMARKS.md`, scaling).

    python bench/drain_scaling.py        # (make bench runs it with the bench virtualenv)

The same drain as bench/queue_drain.py (JOBS no-op jobs, seeded, vacuumed, analyzed and
checkpointed before each run; workers connected before a common "go"), with 1, 2 and 4
runner processes of the product's runner, each at its JOBS_CONCURRENCY setting, as an
operator starts them; the shapes interleaved over REPEAT rounds. During each drain it
records what the limit could be:

- CPU: the runners' own CPU seconds (each process reports its `time.process_time()`)
  and the whole machine's busy share (/proc/stat), the rest being mostly PostgreSQL;
- commits: transactions committed in the scratch database per job (pg_stat_database)
  and WAL flushes per job (pg_stat_wal, for the whole server: other databases' writes
  count too);
- waits: what the database's backends were doing, sampled every SAMPLE_MS from
  pg_stat_activity: running, waiting on an event (locks, WAL, I/O), or idle, waiting
  for the runner's next statement.

Prints `RESULT {...}` and writes its section of BENCHMARKS.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    DEFAULT_ADMIN_URL,
    drop_database,
    interleaved,
    load,
    machine,
    median,
    run_psql,
    spread,
    today,
    write_section,
)
from peers import drain_once, install  # noqa: E402

JOBS = int(os.environ.get("BENCH_DRAIN_JOBS", "10000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
PROCESSES = tuple(int(n) for n in os.environ.get("BENCH_SCALING_PROCESSES", "1,2,4").split(","))
BATCH_SIZE = 100
SAMPLE_MS = 20
DATABASE = "orch_bench_scaling"
ADMIN_URL = os.environ.get("BENCH_POSTGRES_URL", DEFAULT_ADMIN_URL)


def main() -> dict[str, Any]:
    load_before = load()
    url = install("orchestrator", DATABASE)
    observed: dict[int, list[dict[str, Any]]] = {processes: [] for processes in PROCESSES}

    def measure(processes: int) -> float:
        run = drain_once(
            "orchestrator", url, jobs=JOBS, args=(BATCH_SIZE, 0), processes=processes, during=observe
        )  # fmt: skip
        run.update(_after(run.pop("_before")))
        observed[processes].append(run)
        print(
            f"{processes} process(es): {run['rate']:,.0f} jobs/s, runners {run['cpu']:.2f} CPU s, "
            f"machine {run['busy']:.0%} busy, {run['commitsPerJob']:.2f} commits/job",
            flush=True,
        )
        return float(run["rate"])

    rates = dict(zip(PROCESSES, interleaved(PROCESSES, REPEAT, measure), strict=True))
    drop_database(DATABASE)
    results = {
        "jobs": JOBS,
        "repeat": REPEAT,
        "rates": {str(processes): runs for processes, runs in rates.items()},
        "medians": {str(processes): median(runs) for processes, runs in rates.items()},
        "observed": {str(processes): summarise(runs) for processes, runs in observed.items()},
        "load": [load_before, load()],
    }
    write(results)
    print("RESULT " + json.dumps(results), flush=True)
    return results


@contextlib.contextmanager
def observe() -> Iterator[dict[str, Any]]:
    """Sample the database's backends while the drain runs; record the counters it started from."""
    figures: dict[str, Any] = {"_before": _counters()}
    samples: Counter[str] = Counter()
    stop = threading.Event()
    sampler = threading.Thread(target=_sample, args=(samples, stop), name="pg-activity-sampler")
    sampler.start()
    try:
        yield figures
    finally:
        stop.set()
        sampler.join()
        figures["waits"] = dict(samples)


def _sample(samples: Counter[str], stop: threading.Event) -> None:
    sql = (
        "SELECT state, wait_event_type, wait_event FROM pg_stat_activity "
        "WHERE datname = %s AND backend_type = 'client backend' AND pid <> pg_backend_pid()"
    )
    with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
        while not stop.wait(SAMPLE_MS / 1000):
            for state, wait_type, wait_event in connection.execute(sql, [DATABASE]).fetchall():
                samples[_activity(state, wait_type, wait_event)] += 1


def _activity(state: str | None, wait_type: str | None, wait_event: str | None) -> str:
    if state == "active":
        return f"waiting: {wait_type}:{wait_event}" if wait_type else "running"
    if state == "idle in transaction":
        return "idle in transaction (runner working inside a transaction)"
    return "idle (waiting for the runner)"


def _counters() -> dict[str, float]:
    """Return the database's commits, the server's WAL flushes and the machine's CPU ticks (busy, total)."""
    commits, syncs = run_psql(
        ADMIN_URL,
        f"SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = '{DATABASE}'), "
        "(SELECT wal_sync FROM pg_stat_wal)",
    ).split("|")
    # user nice system idle iowait irq softirq steal (guest time is already in user)
    ticks = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    idle = ticks[3] + ticks[4]  # idle + iowait
    return {"commits": int(commits), "walSyncs": int(syncs), "busyTicks": sum(ticks) - idle, "ticks": sum(ticks)}


def _after(before: dict[str, float]) -> dict[str, float]:
    time.sleep(0.5)  # the runners' backends report their statistics as they exit
    after = _counters()
    return {
        "commitsPerJob": (after["commits"] - before["commits"]) / JOBS,
        "walSyncsPerJob": (after["walSyncs"] - before["walSyncs"]) / JOBS,
        # The CPU ticks run on past the drain by the half second above; so does the idle share.
        "busy": (after["busyTicks"] - before["busyTicks"]) / max(1, after["ticks"] - before["ticks"]),
    }


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Return the medians of a shape's observations and its sampled backend activity, as shares."""
    waits: Counter[str] = Counter()
    for run in runs:
        waits.update(run["waits"])
    total = sum(waits.values()) or 1
    return {
        "runnerCpuPerKJob": median([run["cpu"] / JOBS * 1000 for run in runs]),
        "runnerCpuShare": median([run["cpu"] / run["seconds"] / (os.cpu_count() or 1) for run in runs]),
        "busy": median([run["busy"] for run in runs]),
        "commitsPerJob": median([run["commitsPerJob"] for run in runs]),
        "walSyncsPerJob": median([run["walSyncsPerJob"] for run in runs]),
        "activity": {name: count / total for name, count in waits.most_common()},
    }


def write(results: dict[str, Any]) -> None:
    cores = os.cpu_count() or 1
    rows = []
    for processes in PROCESSES:
        key, seen = str(processes), results["observed"][str(processes)]
        top = "; ".join(f"{name} {share:.0%}" for name, share in list(seen["activity"].items())[:4])
        rows.append(
            f"| {processes} | {spread(results['rates'][key])} | {seen['runnerCpuPerKJob']:.2f} s | "
            f"{seen['runnerCpuShare']:.0%} | {seen['busy']:.0%} | {seen['commitsPerJob']:.2f} | "
            f"{seen['walSyncsPerJob']:.2f} | {top} |"
        )
    write_section(
        "bench/drain_scaling.py",
        [
            "## Where one machine is not enough: drain with 1, 2 and 4 runner processes",
            "",
            f"`python bench/drain_scaling.py` on {today()}: {machine()}; load average {results['load'][0]} before, "
            f"{results['load'][1]} after. {JOBS:,} no-op jobs per run, drained by 1, 2 and 4 processes of the "
            f"product's runner (`jobs_run`, batches of {BATCH_SIZE}, each at its `JOBS_CONCURRENCY` setting), set "
            "up and connected before a common start; seeding, `VACUUM ANALYZE` and checkpoint as in the queue "
            f"drain; the shapes interleaved over {REPEAT} round{'s' if REPEAT > 1 else ''}: median (min–max) "
            "jobs/s. Beside each: the runners' own CPU time per 1,000 jobs and as a share of the machine's "
            f"{cores} cores, the whole machine's busy share (the rest of it is mostly PostgreSQL), transactions "
            "committed per job in the scratch database, WAL flushes per job (the whole server's), and what the "
            f"database's backends were doing, sampled every {SAMPLE_MS} ms from `pg_stat_activity` (all rounds).",
            "",
            "| Processes | Jobs/s | Runner CPU / 1,000 jobs | Runner CPU share | Machine busy | Commits / job | "
            "WAL flushes / job | Backends (sampled) |",
            "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
            *rows,
        ],
    )


if __name__ == "__main__":
    main()
