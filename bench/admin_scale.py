"""Benchmark: the admin's changelists on a million rows each (PostgreSQL).

    python bench/admin_scale.py

By default it (re)creates the scratch database `orch_bench_admin` on the local
PostgreSQL (BENCH_POSTGRES_URL names another server) and drops it at the end;
BENCH_DATABASE_URL names a database to use instead, whose windows, runs, dead letters
and jobs are then REPLACED (and which is kept). It is filled with 1,000,000 rows each
of DispatchWindow, FunctionRun, DeadLetter and BackgroundJob (INSERT ... SELECT
generate_series, secondary indexes built afterwards), then a signed-in superuser asks
Django's test client for each model's changelist, a status filter and a dispatch-key
search (for windows and runs also the sorts by job and by window, the missed filter and
one day of the drill-down), REPEAT times each after a warm-up, and for the admin index
with its health panel. The figures (p50 and p95 per page) go to stdout, to the "Admin at
scale" section of BENCHMARKS.md, and as one `RESULT {json}` line for bench/run.py.

Options: --no-seed reuses the rows already there (with BENCH_DATABASE_URL); --explain
prints EXPLAIN ANALYZE of the slowest queries of each page (to find a missing index).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    ROOT,
    drop_database,
    machine,
    percentile,
    scratch_database,
    today,
    write_section,
)

ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "20"))
DAYS = 30
TARGET_P95_MS = 300
SCRATCH = "orch_bench_admin"
TABLES = ("dispatch_dispatchwindow", "runs_functionrun", "jobs_backgroundjob", "runs_deadletter")
# Indexes that do not back a constraint (those stay): dropped before the fill, built after it in one pass.
SECONDARY_INDEXES = """
SELECT indexname, indexdef FROM pg_indexes
WHERE schemaname = current_schema() AND tablename = ANY(%s)
  AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conindid <> 0)
"""

# Shapes like a busy month: 40 cron jobs, 20 job kinds, 500 tenants (a third of the
# jobs without one). Half the dead letters come from jobs, half from function runs;
# one in ten is unresolved.
SEED = """
TRUNCATE dispatch_dispatchwindow, runs_deadletter, runs_functionrunattempt, runs_functionrun, jobs_backgroundjob
    RESTART IDENTITY CASCADE;

INSERT INTO dispatch_dispatchwindow (dispatch_key, job, status, mode, source, correlation_id, window_start,
    window_seconds, requested_at, event_ids, publish_attempts, duplicate_ticks, latency_ms, error, claim, created_at,
    updated_at)
SELECT 'cron:job-' || (i % 40) || ':' || i, 'job-' || (i % 40),
       CASE WHEN i % 10 = 0 THEN 'inline' WHEN i % 200 = 1 THEN 'dispatch_failed' WHEN i % 500 = 3 THEN 'missed'
            ELSE 'enqueued' END,
       CASE WHEN i % 10 = 0 THEN 'inline' WHEN i % 200 = 1 THEN 'dispatch-failed' WHEN i % 500 = 3 THEN ''
            ELSE 'dispatch' END,
       CASE WHEN i % 500 = 3 THEN 'reconciler' WHEN i % 97 = 0 THEN 'manual' ELSE 'cron' END, 'corr-' || i, t, 60, t,
       '[]'::jsonb,
       CASE WHEN i % 10 = 0 THEN 0 ELSE 1 END, i % 3, 3 + i % 40, '', 1, t, t
FROM (SELECT i, now() - i * interval '1 second' * {days} * 86400 / {rows} AS t
      FROM generate_series(1, {rows}) AS i) AS s;

INSERT INTO runs_functionrun (function_id, dispatch_key, window_start, run_id, correlation_id, source, scope, status,
    attempts, started_at, finished_at, duration_ms, last_error, terminal_reason, output, duplicates_suppressed)
SELECT 'cron-job-' || (i % 40), 'cron:job-' || (i % 40) || ':' || i, t, 'run-' || i, 'corr-' || i,
       CASE WHEN i % 97 = 0 THEN 'manual' ELSE 'cron' END,
       CASE WHEN i % 3 = 0 THEN 'global' ELSE 'tenant-' || (i % 500) END,
       CASE WHEN i % 25 = 0 THEN 'failed' WHEN i % 1000 = 1 THEN 'running' ELSE 'succeeded' END,
       CASE WHEN i % 25 = 0 THEN 4 ELSE 1 END, t, t + interval '80 milliseconds', 80,
       CASE WHEN i % 25 = 0 THEN 'RuntimeError: boom' ELSE '' END,
       CASE WHEN i % 25 = 0 THEN 'retries exhausted' ELSE '' END, '{{"ok": true}}'::jsonb, 0
FROM (SELECT i, now() - i * interval '1 second' * {days} * 86400 / {rows} AS t
      FROM generate_series(1, {rows}) AS i) AS s;

INSERT INTO jobs_backgroundjob (tenant, kind, payload, status, priority, attempts, max_attempts, run_after,
    lease_expires_at, locked_by, last_error, dedupe_key, created_at, started_at, finished_at)
SELECT CASE WHEN i % 3 = 0 THEN '' ELSE 'tenant-' || (i % 500) END, 'kind-' || (i % 20),
       jsonb_build_object('n', i),
       CASE WHEN i <= {rows} / 2 THEN 'dead' WHEN i % 20 = 0 THEN 'pending' WHEN i % 50 = 1 THEN 'running'
            WHEN i % 33 = 0 THEN 'cancelled' ELSE 'succeeded' END,
       0, CASE WHEN i <= {rows} / 2 THEN 5 ELSE 1 END, 5, t,
       CASE WHEN i > {rows} / 2 AND i % 20 <> 0 AND i % 50 = 1 THEN t + interval '1 minute' END, '',
       CASE WHEN i <= {rows} / 2 THEN 'ValueError: boom' ELSE '' END,
       CASE WHEN i % 10 = 0 THEN 'dk-' || i END, t, t, t + interval '20 milliseconds'
FROM (SELECT i, now() - i * interval '1 second' * {days} * 86400 / {rows} AS t
      FROM generate_series(1, {rows}) AS i) AS s;

INSERT INTO runs_deadletter (source, function_run_id, job_id, kind, scope, dispatch_key, correlation_id, run_id,
    error, payload, attempts, created_at, resolved_at, resolution, note, requeued_dispatch_key)
SELECT CASE WHEN i % 2 = 0 THEN 'function_run' ELSE 'job' END,
       CASE WHEN i % 2 = 0 THEN i / 2 END,
       CASE WHEN i % 2 = 1 THEN (i + 1) / 2 END,
       CASE WHEN i % 2 = 0 THEN 'cron-job-' || (i % 40) ELSE 'kind-' || (i % 20) END,
       CASE WHEN i % 3 = 0 THEN 'global' ELSE 'tenant-' || (i % 500) END,
       'cron:background-jobs:' || i, 'corr-' || i, 'run-' || i, 'ValueError: boom',
       jsonb_build_object('n', i), 5, t,
       CASE WHEN i % 10 = 0 THEN NULL ELSE t + interval '1 hour' END,
       CASE WHEN i % 10 = 0 THEN '' WHEN i % 10 < 4 THEN 'requeued' ELSE 'resolved' END,
       CASE WHEN i % 10 >= 4 THEN 'known issue' ELSE '' END, ''
FROM (SELECT i, now() - i * interval '1 second' * {days} * 86400 / {rows} AS t
      FROM generate_series(1, {rows}) AS i) AS s;
"""


def pages(rows: int) -> list[tuple[str, str, str]]:
    """Return (model, view, URL) for every measured page; the searched keys and the day exist in the seed."""
    key = rows // 2 + 1
    day = datetime.now(UTC) - timedelta(days=DAYS // 2)
    on_day = f"window_start__year={day.year}&window_start__month={day.month}&window_start__day={day.day}"
    return [
        ("FunctionRun", "changelist", "/admin/runs/functionrun/"),
        ("FunctionRun", "status filter (failed)", "/admin/runs/functionrun/?status__exact=failed"),
        ("FunctionRun", "dispatch-key search", f"/admin/runs/functionrun/?q=cron:job-{key % 40}:{key}"),
        ("FunctionRun", "sorted by function", "/admin/runs/functionrun/?o=0"),
        ("FunctionRun", "sorted by window, oldest first", "/admin/runs/functionrun/?o=1"),
        ("FunctionRun", "one day of windows", f"/admin/runs/functionrun/?{on_day}"),
        ("DeadLetter", "changelist", "/admin/runs/deadletter/"),
        ("DeadLetter", "status filter (unresolved)", "/admin/runs/deadletter/?state=unresolved"),
        ("DeadLetter", "dispatch-key search", f"/admin/runs/deadletter/?q=cron:background-jobs:{key}"),
        ("BackgroundJob", "changelist", "/admin/jobs/backgroundjob/"),
        ("BackgroundJob", "status filter (pending)", "/admin/jobs/backgroundjob/?status__exact=pending"),
        # A job's dispatch key is the drain that dead-lettered it (through its dead letter).
        ("BackgroundJob", "dispatch-key search", f"/admin/jobs/backgroundjob/?q=cron:background-jobs:{key}"),
        ("DispatchWindow", "changelist", "/admin/dispatch/dispatchwindow/"),
        (
            "DispatchWindow",
            "status filter (dispatch_failed)",
            "/admin/dispatch/dispatchwindow/?status__exact=dispatch_failed",
        ),
        ("DispatchWindow", "dispatch-key search", f"/admin/dispatch/dispatchwindow/?q=cron:job-{key % 40}:{key}"),
        ("DispatchWindow", "missed filter", "/admin/dispatch/dispatchwindow/?status__exact=missed"),
        ("DispatchWindow", "sorted by job", "/admin/dispatch/dispatchwindow/?o=1"),
        ("DispatchWindow", "sorted by window, oldest first", "/admin/dispatch/dispatchwindow/?o=0"),
        ("DispatchWindow", "one day of windows", f"/admin/dispatch/dispatchwindow/?{on_day}"),
        ("Admin index", "health panel (24 h)", "/admin/"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-seed", action="store_true", help="reuse the rows already in the database")
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the slowest queries of each page")
    args = parser.parse_args()
    url = os.environ.get("BENCH_DATABASE_URL", "")
    scratch = not url
    if scratch:
        if args.no_seed:
            sys.exit("--no-seed needs BENCH_DATABASE_URL: the scratch database is made anew on every run")
        url = scratch_database(SCRATCH)
    elif not url.startswith("postgres"):
        sys.exit("BENCH_DATABASE_URL must name a throwaway PostgreSQL database, e.g. postgres://postgres@127.0.0.1/x")
    try:
        measure(url, seed=not args.no_seed, explain_queries=args.explain)
    finally:
        if scratch:
            drop_database(SCRATCH)


def measure(url: str, *, seed: bool, explain_queries: bool) -> None:
    os.environ.update(
        DATABASE_URL=url,
        DJANGO_SETTINGS_MODULE="orchestrator.settings",
        LOG_LEVEL="WARNING",
        DEBUG="false",
        ALLOWED_HOSTS="testserver",
        SESSION_COOKIE_SECURE="false",
        CSRF_COOKIE_SECURE="false",
    )
    os.environ.pop("REDIS_URL", None)
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    call_command("migrate", verbosity=0)
    if seed:
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(SECONDARY_INDEXES, [list(TABLES)])
            indexes = cursor.fetchall()
            for name, _ in indexes:
                cursor.execute(f'DROP INDEX "{name}"')
            cursor.execute(SEED.format(days=DAYS, rows=ROWS))
            cursor.execute("SET maintenance_work_mem = '256MB'")
            for _, definition in indexes:
                cursor.execute(definition)
            cursor.execute("VACUUM ANALYZE")  # As autovacuum would have: planner statistics, visibility map.
        print(f"seeded {ROWS:,} rows each of 4 tables in {time.perf_counter() - started:.0f} s", flush=True)
    User.objects.filter(username="bench").delete()
    client = Client()
    client.force_login(User.objects.create_superuser("bench", "bench@example.com", "bench-password"))

    rows, p95s = [], {}
    for model, view, path in pages(ROWS):
        response = client.get(path)  # warm-up (and a check that the page works)
        if response.status_code != 200:
            sys.exit(f"{path} answered {response.status_code}")
        timings = []
        for _ in range(REPEAT):
            started = time.perf_counter()
            client.get(path)
            timings.append((time.perf_counter() - started) * 1000)
        with CaptureQueriesContext(connection) as queries:
            client.get(path)
        p50, p95 = statistics.median(timings), percentile(timings, 0.95)
        verdict = "" if model == "Admin index" else ("pass" if p95 <= TARGET_P95_MS else "FAIL")
        rows.append(f"| {model} | {view} | {len(queries)} | {p50:.0f} ms | {p95:.0f} ms | {verdict} |")
        print(rows[-1], flush=True)
        if verdict:
            p95s[f"{model} {view}"] = round(p95, 1)
        if explain_queries:
            explain(connection, queries.captured_queries)
    write_results(rows)
    print("RESULT " + json.dumps({"p95Ms": p95s}), flush=True)


def explain(connection: Any, captured: list[dict[str, str]]) -> None:
    """Print EXPLAIN ANALYZE of the three slowest statements of one request."""
    slowest = sorted(captured, key=lambda query: float(query["time"]), reverse=True)[:3]
    with connection.cursor() as cursor:
        for query in slowest:
            if not query["sql"].lstrip().upper().startswith("SELECT") and "WITH RECURSIVE" not in query["sql"]:
                continue
            cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {query['sql']}")
            print(f"    -- {float(query['time']) * 1000:.1f} ms: {query['sql'][:200]}")
            for (line,) in cursor.fetchall():
                print(f"    {line}")


def write_results(rows: list[str]) -> None:
    write_section(
        "bench/admin_scale.py",
        [
            "## Admin at scale (changelists on a million rows)",
            "",
            f"`bench/admin_scale.py`, {today()}: {ROWS:,} rows each of `DispatchWindow`, `FunctionRun`, "
            f"`DeadLetter` and `BackgroundJob` over {DAYS} days; {machine()}; a signed-in superuser through "
            f"Django's test client (the whole request: queries and template), {REPEAT} requests per page after a "
            f"warm-up. Target: p95 ≤ {TARGET_P95_MS} ms for each changelist, filter, sort, day and key search.",
            "",
            "```sh",
            "python bench/admin_scale.py   # its own scratch database, orch_bench_admin, made and dropped",
            "```",
            "",
            "| Model | Page | Queries | p50 | p95 | Target |",
            "| --- | --- | ---: | ---: | ---: | --- |",
            *rows,
        ],
    )


if __name__ == "__main__":
    main()
