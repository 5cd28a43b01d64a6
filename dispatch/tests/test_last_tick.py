"""The last cron tick per job (`/metrics`' tick age, the SLO report's silent-cron gate) costs a few index entries per
job, however many windows a job has: each job's answer is read from its newest windows down to its newest cron one.

The plan's rows are asserted, not timings (EXPLAIN ANALYZE on a sample of windows).
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dispatch.models import DispatchWindow
from dispatch.schedule import last_cron_ticks

pytestmark = pytest.mark.django_db

JOBS = ("alpha", "beta", "gamma", "delta")
WINDOWS = 2_000  # per job: a sample of the months a scrape must not read
TABLE = DispatchWindow._meta.db_table


def _windows(now: datetime) -> None:
    """WINDOWS minute windows per job, cron-ticked, then the newest 10 of each recorded missed by the reconciler."""
    rows = []
    for job in JOBS:
        for n in range(WINDOWS):
            start = now - timedelta(minutes=WINDOWS - n)
            source = DispatchWindow.Source.RECONCILER if n >= WINDOWS - 10 else DispatchWindow.Source.CRON
            rows.append(
                DispatchWindow(
                    dispatch_key=f"cron:{job}:{start:%Y-%m-%dT%H:%M}",
                    job=job,
                    status="enqueued",
                    mode="dispatch",
                    source=source,
                    correlation_id="c",
                    window_start=start,
                    window_seconds=60,
                    requested_at=start,
                    created_at=start + timedelta(seconds=1),
                )  # fmt: skip
            )
    DispatchWindow.objects.bulk_create(rows, batch_size=2_000)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {TABLE}")


def _rows_read(plan: dict[str, Any]) -> int:
    """Return the window rows the plan's scans of the window table read (actual rows × loops, with filtered ones)."""
    own = 0
    if plan.get("Relation Name") == TABLE and "Scan" in plan["Node Type"]:
        own = (plan["Actual Rows"] + plan.get("Rows Removed by Filter", 0)) * plan["Actual Loops"]
    return own + sum(_rows_read(child) for child in plan.get("Plans", []))


def test_last_cron_ticks__reads_a_few_rows_per_job_not_all_of_its_windows(now: datetime) -> None:
    _windows(now)

    with CaptureQueriesContext(connection) as queries:
        ticks = dict(last_cron_ticks(list(JOBS)))

    # The newest cron window of each (the reconciler's newer rows do not count), as the ORM reads it.
    newest_cron = now - timedelta(minutes=11) + timedelta(seconds=1)
    assert ticks == {job: newest_cron for job in JOBS}
    [query] = queries.captured_queries
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {query['sql']}")
        [[document]] = cursor.fetchall()
    plan = (json.loads(document) if isinstance(document, str) else document)[0]["Plan"]
    assert _rows_read(plan) <= len(JOBS) * 20, plan  # the reconciler's 10 newer rows and the cron one, per job
