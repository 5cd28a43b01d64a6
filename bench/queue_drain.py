"""Benchmark: draining no-op jobs on PostgreSQL — one and two runner processes, Procrastinate beside it.

    python bench/queue_drain.py        # (make bench runs it with the bench virtualenv)

Each run seeds JOBS `demo.noop` jobs into a scratch database, starts the runner
processes (each set up and connected before a common "go"), and measures from "go"
to the last job done. The same workload then runs on Procrastinate (its own schema,
in a separate scratch database). Prints `RESULT {...}` and writes its section of
BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, drop_database, machine, median, run_psql, scratch_database, today, write_section  # noqa: E402

JOBS = int(os.environ.get("BENCH_DRAIN_JOBS", "12000"))
PEER_JOBS = int(os.environ.get("BENCH_PEER_JOBS", "2000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
BATCH_SIZE = 100
SHAPES = ((1, 1), (1, 4), (2, 1), (2, 4))  # (processes, threads each)
PEER_CONCURRENCY = (1, 8)
SEED = (
    "TRUNCATE jobs_backgroundjob CASCADE",
    "INSERT INTO jobs_backgroundjob (tenant, kind, payload, status, priority, attempts, max_attempts, run_after,"
    " locked_by, last_error, created_at)"
    " SELECT '', 'demo.noop', '{}'::jsonb, 'pending', 0, 0, 5, now() - interval '1 second', '', '', now()"
    " FROM generate_series(1, %d)",
    "VACUUM ANALYZE jobs_backgroundjob",
)


def main() -> dict[str, object]:
    database = "orch_bench_drain"
    url = scratch_database(database)
    migrate(url)
    results: dict[str, object] = {}
    for processes, threads in SHAPES:
        rates = [drain(url, processes, threads) for _ in range(REPEAT)]
        results[f"orchestrator{processes}x{threads}"] = median(rates)
        print(f"orchestrator, {processes} process(es) x {threads}: {[round(r) for r in rates]} jobs/s", flush=True)
    drop_database(database)
    for concurrency in PEER_CONCURRENCY:
        rates = [peer(concurrency) for _ in range(REPEAT)]
        results[f"procrastinate{concurrency}"] = median(rates)
        print(f"procrastinate, concurrency {concurrency}: {[round(r) for r in rates]} jobs/s", flush=True)
    best_peer = max(float(results[f"procrastinate{c}"]) for c in PEER_CONCURRENCY)  # type: ignore[arg-type]
    results["orchestrator1"] = max(float(results[f"orchestrator1x{t}"]) for p, t in SHAPES if p == 1)  # type: ignore[arg-type]
    results["orchestrator2"] = max(float(results[f"orchestrator2x{t}"]) for p, t in SHAPES if p == 2)  # type: ignore[arg-type]
    results["ratio"] = float(results["orchestrator1"]) / best_peer
    write(results)
    print("RESULT " + json.dumps(results), flush=True)
    return results


def migrate(url: str) -> None:
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "orchestrator.settings", "LOG_LEVEL": "WARNING"}
    env.pop("REDIS_URL", None)
    subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"], env=env, check=True, cwd=ROOT)


def drain(url: str, processes: int, threads: int) -> float:
    """Seed JOBS jobs, drain them with `processes` runners of `threads` each, return jobs per second."""
    run_psql(url, SEED[0], SEED[1] % JOBS, SEED[2])
    workers = [
        subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "drain_worker.py"), url, str(BATCH_SIZE), str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for _ in range(processes)
    ]
    for worker in workers:
        assert worker.stdout is not None
        while worker.stdout.readline().strip() != "READY":
            pass
    for worker in workers:
        assert worker.stdin is not None
        worker.stdin.write("go\n")
        worker.stdin.flush()
    results = []
    for worker in workers:
        out, _ = worker.communicate(timeout=900)
        line = next(line for line in out.splitlines() if line.startswith("RESULT "))
        results.append(json.loads(line.removeprefix("RESULT ")))
    done = sum(result["succeeded"] for result in results)
    if done != JOBS:
        raise RuntimeError(f"expected {JOBS} jobs to succeed, got {done}")
    seconds = max(r["finished"] for r in results) - min(r["started"] for r in results)
    return JOBS / seconds


def peer(concurrency: int) -> float:
    """Run the same no-op workload on Procrastinate; return jobs per second."""
    database = "orch_bench_procrastinate"
    url = scratch_database(database)
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "procrastinate_worker.py"), url, str(PEER_JOBS), str(concurrency)],
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
        cwd=ROOT,
    )
    drop_database(database)
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    result = json.loads(line.removeprefix("RESULT "))
    return float(result["jobs"]) / float(result["seconds"])


def write(results: dict[str, object]) -> None:
    rows = [
        f"| Orchestrator runner | {p} process{'es' if p > 1 else ''} × {t} thread{'s' if t > 1 else ''} "
        f"| {float(results[f'orchestrator{p}x{t}']):,.0f} |"  # type: ignore[arg-type]
        for p, t in SHAPES
    ]
    rows += [
        f"| Procrastinate worker | 1 process, concurrency {c} | {float(results[f'procrastinate{c}']):,.0f} |"  # type: ignore[arg-type]
        for c in PEER_CONCURRENCY
    ]
    write_section(
        "bench/queue_drain.py",
        [
            "## Queue drain (no-op jobs, PostgreSQL)",
            "",
            f"`python bench/queue_drain.py` on {today()}: {machine()}. {JOBS:,} `demo.noop` jobs per run for "
            f"Orchestrator's runner (batches of {BATCH_SIZE}, one transaction per job, `run_jobs --concurrency` "
            f"threads), {PEER_JOBS:,} for Procrastinate 3.10 (an async no-op task, `listen_notify=False`, "
            "`wait=False`), each in its own scratch database; from a common start to the last job done; median of "
            f"{REPEAT} runs.",
            "",
            "| Queue | Shape | Jobs/s |",
            "| --- | --- | ---: |",
            *rows,
            "",
            f"One Orchestrator process drains **{float(results['ratio']):.1f}×** as fast as Procrastinate's better "  # type: ignore[arg-type]
            "configuration (goal ≥ 3×; target ≥ 2,000 jobs/s for one process).",
        ],
    )


if __name__ == "__main__":
    main()
