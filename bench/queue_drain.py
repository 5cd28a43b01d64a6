"""Benchmark: draining no-op jobs on PostgreSQL, one process, Orchestrator beside pgqueuer and Procrastinate.

    python bench/queue_drain.py        # (make bench runs it with the bench virtualenv)

Every system drains the same JOBS no-op jobs on the same PostgreSQL (loopback TCP,
the same server settings), each in its own scratch database, seeded and then vacuumed,
analyzed and checkpointed alike (bench/peers.py). The configurations run interleaved,
round after round, REPEAT rounds; each figure is the median and range of its rounds.

- Orchestrator: the product's runner (`jobs_run`, batches of 100, group commit at its
  defaults), 1 process × 1, × 2 and × 4 threads (`run_jobs --concurrency`);
- pgqueuer, as its benchmark tool (`tools/benchmark.py`) runs it: the asyncpg driver,
  one connection per queue manager, uvloop, drain mode. Its defaults (one queue
  manager, batches of 10, as `pgq run`), its benchmark tool's defaults (`--dequeue 5
  --dequeue-batch-size 10`), and batches of 100 with one and with five managers: the
  best of these is "pgqueuer's best one-process configuration";
- Procrastinate: one worker, concurrency 8 (its better one-process shape: concurrency 1
  drains about a third slower, and each of its runs is the longest here);
- with BENCH_BASELINE_REF=<git ref>, Orchestrator at that commit too (1 process × 1
  thread), checked out into a temporary `git worktree` (common.checkout) and run with
  its own code, interleaved with the rest: a change's cost to the drain, measured in
  one run.

The write cost of the due jobs' index (`jobs_due_idx`, which keeps an idle worker's
poll from reading the jobs that wait for later), in the same run: the runner at 1 × 4
on a copy of Orchestrator's schema without the index, interleaved with the others, and
the bulk insert of the JOBS jobs (`EXPLAIN ANALYZE`'s execution time, the notify
trigger included) with and without it, alternately, REPEAT times each.

Prints `RESULT {...}` and writes its section of BENCHMARKS.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import product  # noqa: E402
from common import (  # noqa: E402
    best,
    checkout,
    interleaved,
    load,
    machine,
    median,
    run_psql,
    spread,
    today,
    write_section,
)
from orchestrator_peer import seed_statement  # noqa: E402
from peers import Config, add_orchestrator, drain_configs, installed  # noqa: E402

JOBS = int(os.environ.get("BENCH_DRAIN_JOBS", "10000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
BASELINE_REF = os.environ.get("BENCH_BASELINE_REF", "")
BATCH_SIZE = 100
CONFIGS: tuple[Config, ...] = (
    ("orchestrator1x1", "orchestrator", (BATCH_SIZE, 1), "1 process × 1 thread"),
    ("orchestrator1x2", "orchestrator", (BATCH_SIZE, 2), "1 process × 2 threads"),
    ("orchestrator1x4", "orchestrator", (BATCH_SIZE, 4), "1 process × 4 threads"),
    ("pgqueuerDefaults", "pgqueuer", (1, 10), "1 queue manager, batches of 10 (pgqueuer's defaults)"),
    ("pgqueuerTool", "pgqueuer", (5, 10), "5 queue managers, batches of 10 (its benchmark tool's defaults)"),
    ("pgqueuer1x100", "pgqueuer", (1, 100), "1 queue manager, batches of 100"),
    ("pgqueuer5x100", "pgqueuer", (5, 100), "5 queue managers, batches of 100"),
    ("procrastinate8", "procrastinate", (8,), "1 worker, concurrency 8"),
    ("withoutDueIndex1x4", "withoutDueIndex", (BATCH_SIZE, 4), f"1 process × 4 threads, without `{product.DUE_INDEX}`"),
)
WITHOUT_DUE_INDEX = "withoutDueIndex"  # Orchestrator on a copy of its schema without the due jobs' index
NAMES = {
    "orchestrator": "Orchestrator runner",
    WITHOUT_DUE_INDEX: "Orchestrator runner",
    "pgqueuer": f"pgqueuer {version('pgqueuer')}",
    "procrastinate": f"Procrastinate {version('procrastinate')}",
}


def main() -> dict[str, Any]:
    load_before = load()
    add_orchestrator(WITHOUT_DUE_INDEX, alter=f"DROP INDEX {product.DUE_INDEX}")
    with checkout(BASELINE_REF) if BASELINE_REF else contextlib.nullcontext() as baseline:
        configs = CONFIGS
        if baseline is not None:
            add_orchestrator("baseline", root=baseline)
            NAMES["baseline"] = f"Orchestrator runner at {BASELINE_REF}"
            configs += (("baseline1x1", "baseline", (BATCH_SIZE, 1), "1 process × 1 thread"),)
        with installed(configs, databases="orch_bench_drain") as urls:
            figures = drain_configs(configs, urls=urls, jobs=JOBS, repeat=REPEAT)
            inserts = insert_rates({"with": urls["orchestrator"], "without": urls[WITHOUT_DUE_INDEX]})
    results = summarise(figures) | {"insertRates": inserts}
    results["load"] = [load_before, load()]
    write(results, configs)
    print("RESULT " + json.dumps(results), flush=True)
    return results


def insert_rates(urls: dict[str, str]) -> dict[str, list[float]]:
    """Return, for each schema, the rate (jobs/s) of REPEAT bulk inserts of JOBS pending jobs, taken alternately."""
    rates: dict[str, list[float]] = {name: [] for name in urls}

    def measure(name: str) -> float:
        run_psql(urls[name], f"TRUNCATE {product.JOBS_TABLE} CASCADE")
        plan = json.loads(run_psql(urls[name], f"EXPLAIN (ANALYZE, FORMAT JSON) {seed_statement(JOBS)}"))
        rate = JOBS / (plan[0]["Execution Time"] / 1000)
        print(f"insert, {name} {product.DUE_INDEX}: {rate:,.0f} jobs/s", flush=True)
        return rate

    for name, runs in zip(urls, interleaved(list(urls), REPEAT, measure), strict=True):
        rates[name] = runs
    return rates


def summarise(figures: dict[str, list[float]]) -> dict[str, Any]:
    """Return every config's runs and median, the best of each system, and the ratios."""
    medians = {key: median(runs) for key, runs in figures.items()}
    # Each system's best by its keys' prefix: the runs of the baseline and without the due index are not among them.
    ours, pgqueuer, procrastinate = (best(medians, system) for system in ("orchestrator", "pgqueuer", "procrastinate"))
    results = {
        "jobs": JOBS,
        "repeat": REPEAT,
        "runs": figures,
        "medians": medians,
        "orchestrator1": medians[ours],
        "orchestratorBest": ours,
        "pgqueuerBest": pgqueuer,
        "pgqueuer1": medians[pgqueuer],
        "procrastinateBest": procrastinate,
        "ratioPgqueuer": medians[ours] / medians[pgqueuer],
        "ratio": medians[ours] / medians[procrastinate],
    }
    if "baseline1x1" in medians:  # the same shape, this commit against the baseline's
        results.update(baselineRef=BASELINE_REF, ratioBaseline=medians["orchestrator1x1"] / medians["baseline1x1"])
    return results


def write(results: dict[str, Any], configs: tuple[Config, ...]) -> None:
    runs, medians, inserts = results["runs"], results["medians"], results["insertRates"]
    rows = [
        f"| {NAMES[system]} | {shape} | {spread(runs[key])} | {medians[key] / results['pgqueuer1']:.2f}× |"
        for key, system, _, shape in configs
    ]
    baseline = (
        [
            "",
            f"Against {results['baselineRef']}, run beside it: one process × one thread drains "
            f"**{results['ratioBaseline']:.2f}×** as fast as the same shape at that commit.",
        ]
        if "ratioBaseline" in results
        else []
    )
    write_section(
        "bench/queue_drain.py",
        [
            "## Queue drain, one process (no-op jobs, PostgreSQL)",
            "",
            f"`python bench/queue_drain.py` on {today()}: {machine()}; load average {results['load'][0]} before, "
            f"{results['load'][1]} after. {JOBS:,} no-op jobs per run for every system, each in its own scratch "
            "database on the same server (loopback TCP, same settings); each run empties the system's tables, "
            "seeds the jobs with its own bulk insert, then `VACUUM ANALYZE`s its tables and checkpoints; worker "
            "processes connect first and are timed from a common start to the last job done. Configurations "
            f"run interleaved, {REPEAT} round{'s' if REPEAT > 1 else ''}: median (min–max) jobs/s.",
            "",
            "Orchestrator: the product's runner (`jobs_run`, batches of 100, group commit at its defaults: up to 50 "
            "jobs a transaction, each under its savepoint, each started by its own lease renewal). pgqueuer: "
            "configured as its benchmark tool (`tools/benchmark.py`) does: the asyncpg driver, one connection "
            "and one `PgQueuer` per queue manager, an async no-op entrypoint, drain mode, uvloop; its defaults "
            "are one manager with batches of 10 (`pgq run`), its tool's `--dequeue 5 --dequeue-batch-size 10`. "
            "Procrastinate: an async no-op task, `wait=False`, `listen_notify=False`.",
            "",
            "| Queue | Shape | Jobs/s | vs pgqueuer's best |",
            "| --- | --- | ---: | ---: |",
            *rows,
            "",
            f"Orchestrator's best one-process drain ({results['orchestrator1']:,.0f} jobs/s) is "
            f"**{results['ratioPgqueuer']:.2f}×** pgqueuer's best one-process configuration "
            f"({results['pgqueuer1']:,.0f} jobs/s; goal ≥ 1×) and **{results['ratio']:.1f}×** Procrastinate "
            "(goal ≥ 3×).",
            "",
            f"The due jobs' index (`{product.DUE_INDEX}`: an idle worker's poll reads only the due jobs, whatever "
            'waits for later; docs/jobs.md, "Jobs for later") costs one index entry per job made pending, and '
            f"none as a job runs. Same run: the drain at 1 × 4, {spread(runs['orchestrator1x4'])} jobs/s with it "
            f"and {spread(runs['withoutDueIndex1x4'])} without; the bulk insert of {JOBS:,} jobs (one statement, "
            f"the notify trigger included), {spread(inserts['with'])} jobs/s with it and "
            f"{spread(inserts['without'])} without "
            f"({median(inserts['with']) / median(inserts['without']) - 1:+.0%}).",
            *baseline,
        ],
    )


if __name__ == "__main__":
    main()
