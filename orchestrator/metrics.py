"""What `GET /metrics` answers (docs/operations.md, "Metrics"): the ledgers' levels, and the event metrics.

The levels (gauges: jobs waiting, the backlog, the lag, dead letters to triage, the age
of each cron job's last tick) are read from the database when scraped, in one read-only
snapshot, so every process answers the same. The events (counters and histograms:
windows, publishes, jobs finished, dead letters, latencies) are counted by the processes
where they happen, as they commit (core.prometheus).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Count, QuerySet
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from core.prometheus import events_collector
from dispatch.metrics import dispatch_metrics_init
from dispatch.registry import cron_jobs
from dispatch.schedule import last_cron_ticks
from jobs.health import queue_due_measure
from jobs.metrics import jobs_metrics_init
from jobs.models import BackgroundJob
from jobs.registry import registered_kinds
from orchestrator.metrics_schedule import schedule_metrics
from orchestrator.slo import report_session
from runs.metrics import dead_letters_init
from runs.models import DeadLetter

Status = BackgroundJob.Status
# The jobs the table holds until something happens to them (finished ones are the counters' business).
HELD = (Status.PENDING, Status.RUNNING, Status.DEAD)
PREFIX = "orchestrator"


class LedgerCollector(Collector):
    """Every metric, read from the ledgers as of `now`."""

    def __init__(self, *, now: datetime) -> None:
        self.now = now

    def collect(self) -> Iterable[Metric]:
        outermost = not connection.in_atomic_block
        with transaction.atomic(), report_session(snapshot=outermost):
            return [*_job_metrics(self.now), *_window_metrics(self.now), *schedule_metrics(self.now)]


def metrics_registry(*, now: datetime) -> CollectorRegistry:
    """Return a registry holding the ledgers' metrics as of `now` and the event metrics."""
    _events_known()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LedgerCollector(now=now))
    registry.register(events_collector())
    return registry


def _events_known() -> None:
    """Make every event counter of a registered cron job, function and job kind exist, at 0 until it counts.

    A series that first appears at 1 shows no increase (Prometheus needs a sample before
    it): without this, the first missed window or dead letter would raise no alert. Once
    this process has them, `/metrics` answers them in multiprocess mode too.
    """
    jobs = list(cron_jobs().values())
    kinds = registered_kinds()
    dispatch_metrics_init(job.name for job in jobs)
    jobs_metrics_init(kinds)
    dead_letters_init(job_kinds=kinds, function_ids=(unit.function_id for job in jobs for unit in job.units))


def _job_metrics(now: datetime) -> Iterator[Metric]:
    held = _gauge("jobs", "Jobs waiting, running or dead in the table, by status and kind.", ["status", "kind"])
    yield _by_status_and_kind(held, BackgroundJob.objects.filter(status__in=HELD), HELD)

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
    registered = list(cron_jobs())
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
