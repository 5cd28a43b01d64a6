"""Benchmark: the SLO report on a million dispatch windows (PostgreSQL).

    python bench/slo_report.py

A scratch database (`orch_bench_slo`, re-created) is migrated and filled; the figures go
to stdout (`RESULT {...}`) and to the "SLO report" section of BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import drop_database, machine, scratch_database, setup_django, today, write_section  # noqa: E402

WINDOWS = int(os.environ.get("BENCH_WINDOWS", "1000000"))
RUNS = WINDOWS // 5
DAYS = 30
REPEAT = 5

SEED = """
TRUNCATE dispatch_dispatchwindow, runs_functionrunattempt, runs_functionrun, jobs_queuehealthsnapshot CASCADE;
-- Spread over the last 30 days; 90 % dispatched (1 in 50 after a failed attempt, 1 in 200 failed), the rest inline.
INSERT INTO dispatch_dispatchwindow (dispatch_key, job, status, mode, source, correlation_id, window_start,
    window_seconds, requested_at, event_ids, publish_attempts, duplicate_ticks, latency_ms, error, claim,
    created_at, updated_at)
SELECT 'cron:job-' || (i % 40) || ':' || i, 'job-' || (i % 40),
       CASE WHEN i % 10 = 0 THEN 'inline' WHEN i % 200 = 1 THEN 'dispatch_failed' ELSE 'enqueued' END,
       CASE WHEN i % 10 = 0 THEN 'inline' WHEN i % 200 = 1 THEN 'dispatch-failed' ELSE 'dispatch' END,
       'cron', 'c', t, 60, t, '[]'::jsonb,
       CASE WHEN i % 10 = 0 THEN 0 WHEN i % 200 = 1 THEN 3 WHEN i % 50 = 2 THEN 2 ELSE 1 END,
       i % 3, (abs(hashtext(i::text)) % 400) + 5, '', 1, t, t
FROM (SELECT i, now() - (i * interval '1 second' * {days} * 86400 / {windows}) AS t
      FROM generate_series(1, {windows}) AS i) AS s;
INSERT INTO runs_functionrun (function_id, dispatch_key, run_id, correlation_id, source, scope, status, attempts,
    started_at, last_error, terminal_reason, duplicates_suppressed)
SELECT 'process-background-jobs', 'cron:background-jobs:' || i, 'run-' || i, 'c', 'cron', 'global', 'succeeded', 1,
       now() - (i * interval '1 second' * {days} * 86400 / {runs}), '', '', i % 2
FROM generate_series(1, {runs}) AS i;
INSERT INTO jobs_queuehealthsnapshot (taken_at, pending, ready, running, dead, lag_seconds, unresolved_dead_letters)
SELECT now() - i * interval '1 minute', 10, 5, 1, 0, i % 90, 0 FROM generate_series(1, {days} * 1440) AS i;
"""


def main() -> None:
    database = "orch_bench_slo"
    setup_django(scratch_database(database))
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from orchestrator.slo import slo_report_build

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(SEED.format(days=DAYS, windows=WINDOWS, runs=RUNS))
        cursor.execute("VACUUM ANALYZE")  # As autovacuum would have: index-only scans need the visibility map.
    print(f"seeded {WINDOWS} windows, {RUNS} runs in {time.perf_counter() - started:.1f} s")

    rows, medians = [], {}
    for label, period in (
        ("15m", timedelta(minutes=15)),
        ("24h", timedelta(days=1)),
        ("7d", timedelta(days=7)),
        ("30d", timedelta(days=DAYS)),
    ):
        timings = []
        for _ in range(REPEAT):
            now = timezone.now()
            started = time.perf_counter()
            report = slo_report_build(since=now - period, now=now)
            timings.append((time.perf_counter() - started) * 1000)
        windows = report.as_json()["metrics"]["dispatchLatencyP95Ms"]["windows"]
        medians[label] = statistics.median(timings)
        rows.append(
            f"| `--since {label}` | {windows:,} | {statistics.median(timings):.0f} ms | {max(timings):.0f} ms |"
        )
        print(rows[-1])
    connection.close()
    drop_database(database)
    write(rows)
    print("RESULT " + json.dumps({"medianMs": medians, "windows": WINDOWS}), flush=True)


def write(rows: list[str]) -> None:
    write_section(
        "bench/slo_report.py",
        [
            "## SLO report (`orchestrator_report`, `GET /api/status`)",
            "",
            f"`python bench/slo_report.py` on {today()}: {machine()}. {WINDOWS:,} dispatch windows and {RUNS:,} "
            f"function runs spread over {DAYS} days, one queue-health snapshot a minute; median and worst of "
            f"{REPEAT} runs of the whole report.",
            "",
            "| Period | Dispatched windows in it | Median | Worst |",
            "| --- | ---: | ---: | ---: |",
            *rows,
        ],
    )


if __name__ == "__main__":
    main()
