"""`/metrics`' schedule family: tick lateness per job over 24 hours, its gate, and the drift counter per job."""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.test import Client
from freezegun import freeze_time
from prometheus_client.parser import text_string_to_metric_families

from dispatch.models import CronJobState, DispatchWindow

pytestmark = pytest.mark.django_db


def cron_window(now: datetime, job: str, *, hours_ago: float, lateness_ms: int | None, source: str = "cron") -> None:
    start = now - timedelta(hours=hours_ago)
    DispatchWindow.objects.create(
        dispatch_key=f"cron:{job}:{start:%Y-%m-%dT%H:%M}", job=job, status="enqueued", mode="dispatch", source=source,
        correlation_id="c", window_start=start, window_seconds=3600, requested_at=start, created_at=start,
        lateness_ms=lateness_ms,
    )  # fmt: skip


def test_metrics__tick_lateness_quantiles_per_job_its_gate_and_the_drift_counter(
    client: Client, settings: Any, now: datetime
) -> None:
    settings.METRICS_TOKEN = "metrics-token"
    settings.SLO_MAX_TICK_LATENESS_SECONDS = 45
    for hours, lateness_ms in enumerate([2_000, 4_000, -1_500, 90_000]):
        cron_window(now, "counter", hours_ago=hours + 0.5, lateness_ms=lateness_ms)
    cron_window(now, "counter", hours_ago=30, lateness_ms=600_000)  # older than 24 hours: not counted
    cron_window(now, "daily", hours_ago=2, lateness_ms=None, source="manual")  # no cron tick: no lateness
    CronJobState.objects.create(job="counter", drift_ticks=4, last_drift_at=now)

    with freeze_time(now):
        response = client.get("/metrics", headers={"Authorization": "Bearer metrics-token"})

    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
        if "tick_lateness_24h" in sample.name or "lateness_gate" in sample.name or "drift" in sample.name
    }
    lateness = "orchestrator_cron_tick_lateness_24h_seconds"
    assert samples == {
        (lateness, (("job", "counter"), ("quantile", "0.5"))): 2.0,
        (lateness, (("job", "counter"), ("quantile", "0.95"))): 90.0,
        (lateness, (("job", "counter"), ("quantile", "1.0"))): 90.0,
        ("orchestrator_cron_tick_lateness_gate_seconds", ()): 45.0,
        ("orchestrator_cron_drift_ticks_total", (("job", "counter"),)): 4.0,
    }
    assert not any(math.isnan(value) for value in samples.values())
