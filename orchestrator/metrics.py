"""Prometheus metrics computed from the ledgers at scrape time (`GET /metrics`, docs/operations.md).

Nothing is counted in the process: every figure is read from the database when scraped,
so every gunicorn worker answers the same. The figures over a period cover the last
hour (PERIOD); the SLO report's own queries give the latency and duplicate figures, in
the one read-only snapshot the report takes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, QuerySet
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from dispatch.models import DispatchWindow
from dispatch.registry import cron_jobs
from dispatch.schedule import last_cron_ticks
from jobs.health import queue_due_measure
from jobs.models import BackgroundJob
from orchestrator.slo import report_session
from orchestrator.slo_metrics import LATENCY_FRACTIONS, latency_metrics, suppressed_duplicates_metric
from runs.models import DeadLetter

PERIOD = timedelta(hours=1)
Status = BackgroundJob.Status
# Jobs the table holds until something happens to them are counted whole; finished ones over
# the last hour (the table keeps JOBS_RETENTION_DAYS of them: too many to count at each scrape).
HELD = (Status.PENDING, Status.RUNNING, Status.DEAD)
FINISHED = (Status.SUCCEEDED, Status.DEAD, Status.CANCELLED)
PREFIX = "orchestrator"


class LedgerCollector(Collector):
    """Every metric, read from the ledgers as of `now`."""

    def __init__(self, *, now: datetime) -> None:
        self.now = now

    def collect(self) -> Iterable[Metric]:
        outermost = not connection.in_atomic_block
        with transaction.atomic(), report_session(snapshot=outermost):
            return [*_job_metrics(self.now), *_window_metrics(self.now)]


def metrics_registry(*, now: datetime) -> CollectorRegistry:
    """Return a registry holding only the ledgers' metrics (no per-process ones: workers would differ)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(now=now))
    return registry


def _job_metrics(now: datetime) -> Iterator[Metric]:
    held = _gauge("jobs", "Jobs waiting, running or dead in the table, by status and kind.", ["status", "kind"])
    yield _by_status_and_kind(held, BackgroundJob.objects.filter(status__in=HELD), HELD)
    finished = _gauge(
        "jobs_finished_last_hour", "Jobs that finished in the last hour, by status and kind.", ["status", "kind"]
    )
    recent = BackgroundJob.objects.filter(status__in=FINISHED, finished_at__gte=now - PERIOD, finished_at__lte=now)
    yield _by_status_and_kind(finished, recent, FINISHED)

    letters = _gauge(
        "dead_letters_unresolved", "Dead letters waiting for triage, by source and kind.", ["source", "kind"]
    )
    unresolved = _grouped(DeadLetter.objects.filter(resolved_at__isnull=True), "source", "kind")
    for source, kind, n in sorted(unresolved):
        letters.add_metric([source, kind], n)
    yield letters

    due = queue_due_measure(now=now)
    yield _gauge("jobs_due", "Pending jobs that are due now: the backlog.", value=due.ready)
    yield _gauge("queue_lag_seconds", "Age of the oldest due pending job (0 when none is due).", value=due.lag_seconds)
    yield _gauge("queue_lag_gate_seconds", "The queue-lag stop-gate (SLO_MAX_QUEUE_LAG_SECONDS).", value=_gate_lag())


def _by_status_and_kind(
    family: GaugeMetricFamily, jobs: QuerySet[BackgroundJob], statuses: Sequence[str]
) -> GaugeMetricFamily:
    """Add the count of `jobs` for each status of `statuses` (0 when none) and each kind present."""
    counts = {(status, kind): n for status, kind, n in _grouped(jobs, "status", "kind")}
    for kind in sorted({kind for _, kind in counts}):
        for status in statuses:
            family.add_metric([status, kind], counts.get((status, kind), 0))
    return family


def _window_metrics(now: datetime) -> Iterator[Metric]:
    since = now - PERIOD
    windows = _gauge(
        "windows_last_hour", "Dispatch windows opened in the last hour, by cron job and outcome.", ["job", "outcome"]
    )
    recent = DispatchWindow.objects.filter(created_at__gte=since, created_at__lte=now)
    counts = {(job, status): n for job, status, n in _grouped(recent, "job", "status")}
    registered = list(cron_jobs())
    for job in sorted({*registered, *(job for job, _ in counts)}):
        for outcome in DispatchWindow.Status.values:  # Every status the ledger defines, absent ones as 0.
            windows.add_metric([job, outcome], counts.get((job, outcome), 0))
    yield windows

    latency = latency_metrics(since=since, now=now)
    quantiles = _gauge(
        "dispatch_latency_seconds", "Dispatch latency over the last hour's dispatched windows.", ["quantile"]
    )
    for fraction, metric in zip(LATENCY_FRACTIONS, latency, strict=True):
        quantiles.add_metric([repr(fraction)], math.nan if metric.value is None else metric.value / 1000)
    yield quantiles
    yield _gauge(
        "dispatch_latency_windows",
        "Dispatched windows the latency quantiles cover.",
        value=latency[0].detail["windows"],
    )

    duplicates = suppressed_duplicates_metric(since=since, now=now)
    yield _gauge(
        "duplicate_ticks_last_hour",
        "Ticks of an already claimed window in the last hour (nothing was published for them).",
        value=duplicates.detail["duplicateTicks"],
    )
    yield _gauge(
        "suppressed_duplicate_runs_last_hour",
        "Second Inngest runs of a window stopped by the run ledger in the last hour.",
        value=duplicates.value or 0,
    )

    ages = _gauge(
        "cron_last_tick_age_seconds", "Seconds since the cron service's newest window of each cron job opened.", ["job"]
    )
    for job, opened in last_cron_ticks(registered):
        ages.add_metric([job], max((now - opened).total_seconds(), 0.0))
    yield ages


def _grouped(queryset: QuerySet[Any], first: str, second: str) -> list[tuple[str, str, int]]:
    """Return (first, second, rows) for each pair of values present: one GROUP BY."""
    return list(queryset.values_list(first, second).annotate(n=Count("pk")).order_by())


def _gauge(
    name: str, documentation: str, labels: Sequence[str] = (), *, value: float | None = None
) -> GaugeMetricFamily:
    if labels:
        return GaugeMetricFamily(f"{PREFIX}_{name}", documentation, labels=list(labels))
    return GaugeMetricFamily(f"{PREFIX}_{name}", documentation, value=value)


def _gate_lag() -> float:
    return float(settings.SLO_MAX_QUEUE_LAG_SECONDS)
