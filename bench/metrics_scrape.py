"""Benchmark: one Prometheus scrape of `GET /metrics` on a million-row ledger (PostgreSQL).

    python bench/metrics_scrape.py

A scratch database (`orch_bench_metrics`, re-created, dropped at the end) is migrated and
filled with 1,000,000 background jobs (a week of them: 96 % succeeded, 1 % each pending
and due, pending and scheduled, dead and cancelled), a dead letter per dead job (half of
them resolved), 1,000,000 dispatch windows of 40 registered cron jobs over 30 days and
200,000 function runs. Django's test client then scrapes `/metrics` with the bearer
token, REPEAT times after a warm-up, with production settings (DEBUG off). The figures
(median, p95 and worst of the whole request, and the time of each query of one scrape)
go to stdout, to the "Metrics scrape" section of BENCHMARKS.md, and as one
`RESULT {json}` line for bench/run.py. BENCH_ROWS scales the tables down for a try.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import product  # noqa: E402
from common import (  # noqa: E402
    drop_database,
    load,
    machine,
    median,
    percentile,
    prepare_tables,
    scratch_database,
    setup_django,
    today,
    write_section,
)

ROWS = int(os.environ.get("BENCH_ROWS", "1000000"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "20"))
CRON_JOBS = 40
TOKEN = "bench-metrics-token"
SCRATCH = "orch_bench_metrics"
TABLES = (product.JOBS_TABLE, product.WINDOWS_TABLE, "runs_functionrun", "runs_deadletter")

SEED = """
INSERT INTO {jobs} (tenant, kind, payload, status, priority, attempts, max_attempts, run_after, lease_expires_at,
    locked_by, last_error, created_at, started_at, finished_at)
SELECT '', 'kind-' || (i % 20), '{{}}'::jsonb, s.status, 0, 1, 5,
       CASE s.status WHEN 'pending' THEN now() + CASE WHEN i % 2 = 0 THEN interval '-10 minutes'
                                                         ELSE interval '1 hour' END
                     ELSE t END,
       CASE s.status WHEN 'running' THEN now() + interval '1 minute' END, '', '', t, t,
       CASE WHEN s.status IN ('succeeded', 'dead', 'cancelled') THEN t END
FROM (SELECT i, now() - (i * interval '1 second' * 7 * 86400 / {rows}) AS t,
             CASE WHEN i % 1000 = 0 THEN 'running' WHEN i % 100 < 96 THEN 'succeeded'
                  WHEN i % 100 < 98 THEN 'pending' WHEN i % 100 = 98 THEN 'dead' ELSE 'cancelled' END AS status
      FROM generate_series(1, {rows}) AS i) AS s;
INSERT INTO runs_deadletter (source, job_id, kind, scope, dispatch_key, correlation_id, run_id, error, payload,
    attempts, created_at, resolved_at, resolution, note, requeued_dispatch_key)
SELECT 'job', id, kind, 'global', '', '', '', 'ValueError: boom', payload, 5, finished_at,
       CASE WHEN id % 2 = 0 THEN finished_at END, CASE WHEN id % 2 = 0 THEN 'resolved' ELSE '' END, '', ''
FROM {jobs} WHERE status = 'dead';
INSERT INTO {windows} (dispatch_key, job, status, mode, source, correlation_id, window_start, window_seconds,
    requested_at, event_ids, publish_attempts, duplicate_ticks, latency_ms, error, claim, created_at, updated_at)
SELECT 'cron:' || job || ':' || i, job,
       CASE WHEN i % 10 = 0 THEN 'inline' WHEN i % 200 = 1 THEN 'dispatch_failed' ELSE 'enqueued' END,
       CASE WHEN i % 10 = 0 THEN 'inline' WHEN i % 200 = 1 THEN 'dispatch-failed' ELSE 'dispatch' END,
       'cron', 'c', t, 60, t, '[]'::jsonb, 1, i % 3, (abs(hashtext(i::text)) % 400) + 5, '', 1, t, t
FROM (SELECT i, now() - (i * interval '1 second' * 30 * 86400 / {rows}) AS t,
             'bench-' || lpad((i % {cron_jobs})::text, 5, '0') AS job
      FROM generate_series(1, {rows}) AS i) AS s;
INSERT INTO runs_functionrun (function_id, dispatch_key, run_id, correlation_id, source, scope, status, attempts,
    started_at, last_error, terminal_reason, duplicates_suppressed)
SELECT 'process-background-jobs', 'cron:background-jobs:' || i, 'run-' || i, 'c', 'cron', 'global', 'succeeded', 1,
       now() - (i * interval '1 second' * 30 * 86400 / {runs}), '', '', i % 2
FROM generate_series(1, {runs}) AS i;
"""


def main() -> None:
    load_at_start = load()
    url = scratch_database(SCRATCH)
    setup_django(
        url, settings="bench_settings", BENCH_CRON_JOBS=str(CRON_JOBS), METRICS_TOKEN=TOKEN, ALLOWED_HOSTS="testserver"
    )
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client

    call_command("migrate", verbosity=0)
    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(
            SEED.format(
                jobs=product.JOBS_TABLE,
                windows=product.WINDOWS_TABLE,
                rows=ROWS,
                runs=ROWS // 5,
                cron_jobs=CRON_JOBS,
            )
        )
    prepare_tables(url, TABLES)  # As autovacuum would have: index-only scans need the visibility map.
    print(f"seeded {ROWS:,} jobs, {ROWS:,} windows, {ROWS // 5:,} runs in {time.perf_counter() - started:.1f} s")

    client = Client()
    headers = {"Authorization": f"Bearer {TOKEN}"}

    def scrape() -> float:
        begun = time.perf_counter()
        response = client.get("/metrics", headers=headers)
        elapsed = (time.perf_counter() - begun) * 1000
        assert response.status_code == 200, response.content[:200]
        return elapsed

    scrape()  # warm-up: connections, caches, prepared statements
    load_before = load()
    timings = [scrape() for _ in range(REPEAT)]
    queries = _query_times(connection, lambda: client.get("/metrics", headers=headers))
    size = len(client.get("/metrics", headers=headers).content)
    connection.close()
    drop_database(SCRATCH)

    figures = {
        "medianMs": round(median(timings), 1),
        "p95Ms": round(percentile(timings, 0.95), 1),
        "worstMs": round(max(timings), 1),
        "rows": ROWS,
        "bytes": size,
        "load": [load_at_start, load_before],
    }
    print(json.dumps(figures))
    for sql, ms in queries[:6]:
        print(f"  {ms:8.1f} ms  {sql[:110]}")
    write(figures, queries)
    print("RESULT " + json.dumps(figures), flush=True)


def _query_times(connection: Any, call: Callable[[], Any]) -> list[tuple[str, float]]:
    """Return each query of one call of `call` with its time in ms, slowest first."""
    times: list[tuple[str, float]] = []

    def timed(execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        begun = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            times.append((" ".join(sql.split()), (time.perf_counter() - begun) * 1000))

    with connection.execute_wrapper(timed):
        call()
    return sorted(times, key=lambda item: -item[1])


def write(figures: dict[str, Any], queries: list[tuple[str, float]]) -> None:
    total = sum(ms for _, ms in queries)
    slowest = [f"| {ms:.1f} ms | `{_label(sql)}` |" for sql, ms in queries[:5]]
    write_section(
        "bench/metrics_scrape.py",
        [
            "## Metrics scrape (`GET /metrics`)",
            "",
            f"`python bench/metrics_scrape.py` on {today()}: {machine()}; load average {figures['load'][0]} at the "
            f"start, {figures['load'][1]} after the seeding, before the scrapes. {ROWS:,} background jobs (a week: "
            f"96 % succeeded, 1 % each pending and due, scheduled, dead, cancelled; {ROWS // 100:,} dead letters, half "
            f"resolved), {ROWS:,} "
            f"dispatch windows of {CRON_JOBS} cron jobs over 30 days, {ROWS // 5:,} function runs; tables vacuumed "
            f"and analysed. {REPEAT} scrapes through Django's test client after a warm-up, production settings.",
            "",
            "| Scrape | Median | p95 | Worst | Answer |",
            "| --- | ---: | ---: | ---: | ---: |",
            f"| whole request | {figures['medianMs']:.0f} ms | {figures['p95Ms']:.0f} ms | {figures['worstMs']:.0f} ms "
            f"| {figures['bytes']:,} bytes |",
            "",
            f"Its queries took {total:.0f} ms in one scrape; the slowest:",
            "",
            "| Time | Query |",
            "| ---: | --- |",
            *slowest,
        ],
    )


def _label(sql: str) -> str:
    """Return a query shortened enough to tell which one it is: no table prefixes or aliases, at most 150 characters."""
    short = re.sub(r' AS "\w+"', "", re.sub(r'"\w+"\.', "", sql))
    return short[:150].replace("|", "\\|") + ("…" if len(short) > 150 else "")


if __name__ == "__main__":
    main()
