"""Benchmark: draining jobs that each write one row, one process each, Orchestrator beside pgqueuer.

    python bench/write_drain.py        # (make bench runs it with the bench virtualenv)

The shape group commit exists for: a job's work is a database write. Each job inserts
one row into the same table (common.WRITES_TABLE) on the same PostgreSQL, each system in
its own scratch database, seeded, vacuumed, analyzed and checkpointed alike
(bench/peers.py); each run checks that every job wrote its one row. The configurations
run interleaved, round after round, REPEAT rounds; each figure is the median and range
of its rounds.

- Orchestrator: the product's runner (`jobs_run`, batches of 100, group commit at its
  defaults), 1 process × 1 and × 4 threads; the handler inserts its row through the ORM
  (`Model.objects.create`), inside the group's transaction: the row commits with the
  job's success mark, or not at all;
- pgqueuer, configured as in bench/queue_drain.py (its defaults, its benchmark tool's
  defaults, batches of 100 with one and with five queue managers); its entrypoint
  inserts the row through its queue manager's own asyncpg connection, in a transaction
  of its own (pgqueuer marks the job done afterwards, in its own batch).

Prints `RESULT {...}` and writes its section of BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import best, load, machine, median, spread, today, write_section  # noqa: E402
from peers import Config, drain_configs, installed  # noqa: E402

JOBS = int(os.environ.get("BENCH_WRITE_JOBS", "5000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
BATCH_SIZE = 100
CONFIGS: tuple[Config, ...] = (
    ("orchestrator1x1", "orchestrator", (BATCH_SIZE, 1), "1 process × 1 thread"),
    ("orchestrator1x4", "orchestrator", (BATCH_SIZE, 4), "1 process × 4 threads"),
    ("pgqueuerDefaults", "pgqueuer", (1, 10), "1 queue manager, batches of 10 (pgqueuer's defaults)"),
    ("pgqueuerTool", "pgqueuer", (5, 10), "5 queue managers, batches of 10 (its benchmark tool's defaults)"),
    ("pgqueuer1x100", "pgqueuer", (1, 100), "1 queue manager, batches of 100"),
    ("pgqueuer5x100", "pgqueuer", (5, 100), "5 queue managers, batches of 100"),
)
NAMES = {"orchestrator": "Orchestrator runner", "pgqueuer": f"pgqueuer {version('pgqueuer')}"}


def main() -> dict[str, Any]:
    load_before = load()
    with installed(CONFIGS, databases="orch_bench_writes") as urls:
        figures = drain_configs(CONFIGS, urls=urls, jobs=JOBS, repeat=REPEAT, shape="write")
    medians = {key: median(runs) for key, runs in figures.items()}
    ours, pgqueuer = best(medians, "orchestrator"), best(medians, "pgqueuer")
    results = {
        "jobs": JOBS,
        "repeat": REPEAT,
        "runs": figures,
        "medians": medians,
        "orchestratorBest": ours,
        "orchestrator1": medians[ours],
        "pgqueuerBest": pgqueuer,
        "pgqueuer1": medians[pgqueuer],
        "ratioPgqueuer": medians[ours] / medians[pgqueuer],
        "load": [load_before, load()],
    }
    write(results)
    print("RESULT " + json.dumps(results), flush=True)
    return results


def write(results: dict[str, Any]) -> None:
    runs, medians = results["runs"], results["medians"]
    rows = [
        f"| {NAMES[system]} | {shape} | {spread(runs[key])} | {medians[key] / results['pgqueuer1']:.2f}× |"
        for key, system, _, shape in CONFIGS
    ]
    write_section(
        "bench/write_drain.py",
        [
            "## Write jobs, one process (each job inserts one row, PostgreSQL)",
            "",
            f"`python bench/write_drain.py` on {today()}: {machine()}; load average {results['load'][0]} before, "
            f"{results['load'][1]} after. {JOBS:,} jobs per run for every system, each inserting one row into the "
            "same table (`id bigserial`, `job_id`, `written_at`), each system in its own scratch database on the "
            "same server; seeding, `VACUUM ANALYZE`, checkpoint and the common start as in the no-op drain; every "
            "run checks one row per job. Configurations run interleaved, "
            f"{REPEAT} round{'s' if REPEAT > 1 else ''}: median (min–max) jobs/s.",
            "",
            "Orchestrator: the product's runner at its defaults; the handler inserts its row through the ORM "
            "(`Model.objects.create`) inside the group's transaction, so the row commits with the job's success "
            "mark. pgqueuer: configured as in the no-op drain; its entrypoint inserts the row through its queue "
            "manager's own asyncpg connection, a transaction of its own, before pgqueuer marks the job done.",
            "",
            "| Queue | Shape | Jobs/s | vs pgqueuer's best |",
            "| --- | --- | ---: | ---: |",
            *rows,
            "",
            f"Orchestrator's best one-process drain of write jobs ({results['orchestrator1']:,.0f} jobs/s) is "
            f"**{results['ratioPgqueuer']:.2f}×** pgqueuer's best one-process configuration "
            f"({results['pgqueuer1']:,.0f} jobs/s; goal ≥ 1×).",
        ],
    )


if __name__ == "__main__":
    main()
