"""The SLO report (docs/operations.md): each figure beside its stop-gate, computed with SQL aggregates.

The figures themselves are orchestrator.slo_metrics; this module reads the period,
takes the database snapshot they are computed in, and judges the gates.

`slo_report_build` serves both `GET /api/status` and `manage.py orchestrator_report`.
Every figure covers the period [since, now], except backlog and lag, which are
measured now (and, for lag, judged over the period from the queue-health snapshots).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction

from core.timefmt import iso_utc
from core.timefmt import parse_period as parse_period  # the report's `--since` and `?since=`
from orchestrator.slo_metrics import (
    Metric,
    dead_letters_metric,
    enqueue_failure_metric,
    latency_metrics,
    queue_metrics,
    rerun_metrics,
    suppressed_duplicates_metric,
)
from orchestrator.slo_schedule import (
    abandoned_metric,
    last_tick_metric,
    missed_windows_metric,
    stale_pending_metric,
    tick_lateness_metric,
)


@dataclass(frozen=True)
class SloReport:
    since: datetime
    now: datetime
    metrics: tuple[Metric, ...]

    @property
    def passed(self) -> bool:
        return all(metric.passed is not False for metric in self.metrics)

    @property
    def failed(self) -> list[str]:
        """Return the names of the metrics that crossed their gate."""
        return [metric.name for metric in self.metrics if metric.passed is False]

    def as_json(self) -> dict[str, Any]:
        return {
            "pass": self.passed,
            "failed": self.failed,
            "since": iso_utc(self.since),
            "now": iso_utc(self.now),
            "periodSeconds": round((self.now - self.since).total_seconds()),
            "metrics": {metric.name: metric.as_json() for metric in self.metrics},
        }


def slo_report_build(*, since: datetime, now: datetime) -> SloReport:
    """Return the report for the period [since, now], every figure from one snapshot of the database."""
    outermost = not connection.in_atomic_block
    with transaction.atomic(), report_session(snapshot=outermost):
        return SloReport(
            since=since,
            now=now,
            metrics=(
                *latency_metrics(since=since, now=now),
                enqueue_failure_metric(since=since, now=now),
                *rerun_metrics(since=since, now=now),
                suppressed_duplicates_metric(since=since, now=now),
                *queue_metrics(since=since, now=now),
                dead_letters_metric(since=since, now=now),
                missed_windows_metric(since=since, now=now),
                stale_pending_metric(since=since, now=now),
                abandoned_metric(since=since, now=now),
                tick_lateness_metric(since=since, now=now),
                last_tick_metric(since=since, now=now),
            ),
        )


@contextmanager
def report_session(*, snapshot: bool) -> Iterator[None]:
    """On PostgreSQL, make the report's transaction one read-only snapshot, tuned for large scans.

    Inside a caller's transaction (`snapshot` false) the caller's isolation stands.

    The percentiles sort every dispatched window of the period: with the default
    work_mem a month of them spills to disk; and with random_page_cost at its
    spinning-disk default the planner prefers a sequential scan of the whole table
    to the index-only scan of the latency index.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            if snapshot:
                cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            cursor.execute("SET LOCAL work_mem = '64MB'")
            cursor.execute("SET LOCAL random_page_cost = 1.1")
            # Plan each query for its own period: a cached generic plan (prepared
            # statements) would pick one access path for every period length.
            cursor.execute("SET LOCAL plan_cache_mode = force_custom_plan")
    yield
