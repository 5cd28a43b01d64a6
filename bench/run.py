"""Run every benchmark in turn and rewrite BENCHMARKS.md (`make bench`).

Each script writes its own section; this one adds the summary at the top: every
target of the benchmarks issue beside the measured figure, and throughput as a
fraction of this machine's PostgreSQL insert-commit rate.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCHMARKS, DEFAULT_ADMIN_URL, ROOT, load, machine, median, run_psql, today, write_section  # noqa: E402

# The latency benchmarks run while the machine is quietest; between scripts the
# database server checkpoints, so that no benchmark pays for the last one's writes.
SCRIPTS = (
    "pg_limit",
    "dispatch_latency",
    "pickup_latency",
    "queue_drain",
    "write_drain",
    "drain_scaling",
    "admin_scale",
    "slo_report",
    "metrics_scrape",
)


SUMMARY = "<!-- bench/run.py: begin -->\n<!-- bench/run.py: end -->"


def main() -> None:
    text = BENCHMARKS.read_text() if BENCHMARKS.exists() else "# Benchmarks\n"
    if "<!-- bench/run.py: begin -->" not in text:
        # The summary goes first, under the title; each script's section follows.
        BENCHMARKS.write_text(text.replace("# Benchmarks\n", f"# Benchmarks\n\n{SUMMARY}\n", 1))
    started, load_before = time.monotonic(), load()
    results: dict[str, Any] = {}
    for script in SCRIPTS:
        run_psql(os.environ.get("BENCH_POSTGRES_URL", DEFAULT_ADMIN_URL), "CHECKPOINT")
        print(f"=== bench/{script}.py", flush=True)
        results[script] = run(script)
    minutes = (time.monotonic() - started) / 60
    write_summary(results, minutes, loads=(load_before, load()))
    print(f"=== done in {minutes:.1f} min; BENCHMARKS.md rewritten", flush=True)


def run(script: str) -> dict[str, Any]:
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / f"{script}.py")], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    result: dict[str, Any] = {}
    for line in process.stdout:
        print(f"  {line.rstrip()}", flush=True)
        if line.startswith("RESULT "):
            result = json.loads(line.removeprefix("RESULT "))
    if process.wait() != 0:
        raise SystemExit(f"bench/{script}.py failed")
    return result


def write_summary(results: dict[str, Any], minutes: float, *, loads: tuple[str, str]) -> None:
    limit, drain, dispatch = results["pg_limit"], results["queue_drain"], results["dispatch_latency"]
    writes = results["write_drain"]
    pickup, scaling = results["pickup_latency"], results["drain_scaling"]
    admin, report = results["admin_scale"], results["slo_report"]
    bound_ms = dispatch["bound"] * 1000
    ratios = dispatch["ratios"]
    goals = [
        _row(
            "1. Group commit: one runner process vs pgqueuer's best one-process configuration (drain)",
            "≥ 1×",
            drain["ratioPgqueuer"],
            1,
            "×",
            least=True,
        ),
        _row(
            "2. Instant pickup, `run_jobs --loop`: enqueue → start p50",
            "≤ 10 ms",
            pickup["orchestrator"]["p50"],
            10,
            "ms",
        ),
        _row(
            "2. Instant pickup, `run_jobs --loop`: enqueue → start p95",
            "≤ 50 ms",
            pickup["orchestrator"]["p95"],
            50,
            "ms",
        ),
        *(
            _row(
                f"3. Dispatch near its floor: {label} over the floor (p50)",
                "≤ 1.3×",
                median(ratios[key]["p50"]),
                1.3,
                "×",
            )
            for key, label in (
                ("fresh1", "fresh, 1 client"),
                ("fresh8", "fresh, 8 clients"),
                ("dup1", "duplicate, 1 client"),
                ("dup8", "duplicate, 8 clients"),
            )
        ),
        *(
            _row(
                f"4. Drain with {processes} runner process{'es' if processes != '1' else ''}",
                "(reported)",
                rate,
                None,
                "/s",
            )
            for processes, rate in scaling["medians"].items()
        ),
    ]
    kept = [
        _row(
            "Write jobs (each inserts one row through the ORM): one runner process vs pgqueuer's best one-process "
            "configuration",
            "≥ 1×",
            writes["ratioPgqueuer"],
            1,
            "×",
            least=True,
        ),
        *(
            [
                _row(
                    f"Speed kept: no-op drain, 1 process × 1 thread, vs {drain['baselineRef']} in the same run",
                    "≥ 0.90×",
                    drain["ratioBaseline"],
                    0.9,
                    "×",
                    least=True,
                )
            ]
            if "ratioBaseline" in drain
            else []
        ),
    ]
    peers = [
        f"| Queue drain, one process (jobs/s) | {drain['orchestrator1']:,.0f} | {drain['pgqueuer1']:,.0f} "
        f"| {drain['medians'][drain['procrastinateBest']]:,.0f} |",
        f"| Write jobs, one process (jobs/s) | {writes['orchestrator1']:,.0f} | {writes['pgqueuer1']:,.0f} | — |",
        *(
            f"| Pickup, idle standing worker: {name} | {pickup['orchestrator'][key]:.1f} ms "
            f"| {pickup['pgqueuer'][key]:.1f} ms | {pickup['procrastinate'][key]:.1f} ms |"
            for key, name in (("p50", "p50"), ("p95", "p95"))
        ),
    ]
    rows = [
        _row("Dispatch, fresh window, 1 client: p50", "≤ 4 ms", dispatch["fresh1"]["p50"], 4, "ms"),
        _row("Dispatch, fresh window, 1 client: p95", "≤ 8 ms", dispatch["fresh1"]["p95"], 8, "ms"),
        _row("Dispatch, duplicate tick, 1 client: p95", "≤ 4 ms", dispatch["dup1"]["p95"], 4, "ms"),
        _row("Dispatch, 8 clients: fresh dispatches/s", "≥ 500/s", dispatch["fresh8"]["rate"], 500, "/s", least=True),
        _row("Dispatch, 8 clients: p99", "≤ 50 ms", dispatch["fresh8"]["p99"], 50, "ms"),
        _row(
            "Dispatch, event API hanging: slowest answer",
            f"≤ {bound_ms + 100:.0f} ms",
            dispatch["hang"]["max"],
            bound_ms + 100,
            "ms",
        ),
        _row("Queue drain, 1 process: jobs/s", "≥ 2,000/s", drain["orchestrator1"], 2000, "/s", least=True),
        _row("Queue drain vs Procrastinate", "≥ 3×", drain["ratio"], 3, "×", least=True),
        _row(
            "Queue drain, 1 process × 4 threads, without `jobs_due_idx` (its write cost, same run)",
            "(reported)",
            drain["medians"]["withoutDueIndex1x4"],
            None,
            "/s",
        ),
        _row(
            "Bulk insert of pending jobs with `jobs_due_idx` (same run)",
            "(reported)",
            median(drain["insertRates"]["with"]),
            None,
            "/s",
        ),
        _row(
            "Bulk insert of pending jobs without `jobs_due_idx`",
            "(reported)",
            median(drain["insertRates"]["without"]),
            None,
            "/s",
        ),
        *(
            _row(f"Admin, 1M rows: {name}: p95", "≤ 300 ms", p95, 300, "ms")
            for name, p95 in sorted(admin.get("p95Ms", {}).items())
        ),
        _row("SLO report over 1M windows, `--since 24h`", "≤ 1 s", report["medianMs"]["24h"], 1000, "ms"),
        _row(
            "SLO report, all 1M windows in the period (`--since 30d`)", "≤ 1 s", report["medianMs"]["30d"], 1000, "ms"
        ),
    ]
    tps = limit["tps1"]
    write_section(
        "bench/run.py",
        [
            "## Summary",
            "",
            f"`make bench` on {today()}, {minutes:.1f} minutes: {machine()}; load average {loads[0]} at the start, "
            f"{loads[1]} at the end. Each section below says how its figures were taken. The machine's commit "
            "ceiling — PostgreSQL's single-row insert-commit rate measured with pgbench — is "
            f"{tps:,.0f}/s with one client and {limit['tps8']:,.0f}/s with eight:",
            "",
            f"- queue drain, 1 process: {drain['orchestrator1']:,.0f} jobs/s = {drain['orchestrator1'] / tps:.0%} "
            "of the one-client commit rate (jobs commit in groups, but each job's start — its lease renewal and "
            "`started_at` — is a transaction of its own); pgqueuer's best one-process "
            f"configuration: {drain['pgqueuer1']:,.0f} jobs/s = {drain['pgqueuer1'] / tps:.0%} of it (it marks "
            "jobs done in batches);",
            f"- dispatch, 8 clients: {dispatch['fresh8']['rate']:,.0f} dispatches/s = "
            f"{dispatch['fresh8']['rate'] / limit['tps8']:.0%} of the eight-client commit rate (each fresh dispatch "
            "commits twice: the window's claim and its outcome, besides the HTTP publish).",
            "",
            "### The goals of issue 16",
            "",
            "| Goal | Target | Measured | Met |",
            "| --- | --- | ---: | :---: |",
            *goals,
            "",
            "### The goals of issue 20 (handler isolation)",
            "",
            "| Goal | Target | Measured | Met |",
            "| --- | --- | ---: | :---: |",
            *kept,
            "",
            "| Side by side (same run) | Orchestrator | pgqueuer | Procrastinate |",
            "| --- | ---: | ---: | ---: |",
            *peers,
            "",
            "### Earlier targets",
            "",
            "| Target | Goal | Measured | Met |",
            "| --- | --- | ---: | :---: |",
            *rows,
        ],
    )


def _row(label: str, goal: str, value: float, limit: float | None, unit: str, *, least: bool = False) -> str:
    shown = f"{value:,.2f} {unit}" if unit in ("ms", "×") else f"{value:,.0f}{unit}"
    return f"| {label} | {goal} | {shown} | {_met(value, limit, least=least)} |"


def _met(value: float, limit: float | None, *, least: bool) -> str:
    if limit is None:
        return "—"
    return "yes" if (value >= limit if least else value <= limit) else "**no**"


if __name__ == "__main__":
    main()
