"""The cron schedule's metrics on `/metrics` (docs/operations.md, "Metrics"): tick lateness and drift per job.

Read from the ledgers at scrape time, as the levels of orchestrator.metrics: the
lateness quantiles of the cron service's ticks over the last 24 hours (as the Cron jobs
page shows them, and the SLO report gates them), its gate, and each job's drift ticks,
a counter kept on the job's state row (so it survives restarts and pruning, the same
in every process). The lateness histogram, which `histogram_quantile()` aggregates over
any range, is counted by the ticks themselves (dispatch.metrics).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import datetime, timedelta

from django.conf import settings
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from core.aggregates import percentiles_by
from dispatch.models import CronJobState, DispatchWindow

PERIOD = timedelta(hours=24)
QUANTILES = (0.5, 0.95, 1.0)


def schedule_metrics(now: datetime) -> Iterator[Metric]:
    """Yield the lateness quantiles per job, the lateness gate, and the drift counter per job."""
    lateness = GaugeMetricFamily(
        "orchestrator_cron_tick_lateness_24h_seconds",
        "How late the cron service's ticks came for their windows over the last 24 hours (arrival minus the "
        "window's start; negative: early), by job; quantile 1 is the latest.",
        labels=["job", "quantile"],
    )
    ticked = DispatchWindow.objects.filter(
        source=DispatchWindow.Source.CRON,
        lateness_ms__isnull=False,
        created_at__gte=now - PERIOD,
        created_at__lte=now,
    )
    for job, values in sorted(percentiles_by(ticked, "job", "lateness_ms", QUANTILES).items()):
        for quantile in QUANTILES:
            value = values[quantile]
            lateness.add_metric([job, repr(quantile)], math.nan if value is None else value / 1000)
    yield lateness
    yield GaugeMetricFamily(
        "orchestrator_cron_tick_lateness_gate_seconds",
        "The tick-lateness stop-gate on the p95 (SLO_MAX_TICK_LATENESS_SECONDS).",
        value=float(settings.SLO_MAX_TICK_LATENESS_SECONDS),
    )
    drift = CounterMetricFamily(
        "orchestrator_cron_drift_ticks",
        "Cron ticks that came further than the job's tolerance from any of its window starts, by job.",
        labels=["job"],
    )
    for job, ticks in CronJobState.objects.filter(drift_ticks__gt=0).order_by("job").values_list("job", "drift_ticks"):
        drift.add_metric([job], ticks)
    yield drift
