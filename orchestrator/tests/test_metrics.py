"""`GET /metrics`: the ledgers as Prometheus reads them, parsed by prometheus_client's own parser."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from freezegun import freeze_time

from dispatch.models import DispatchWindow
from dispatch.registry import cron_jobs
from orchestrator.metrics import HELD
from runs.models import DeadLetter, FunctionRun
from testsupport.prometheus import Samples, samples_of, value

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(autouse=True)
def token(settings: Any, now: datetime) -> Iterator[None]:
    settings.METRICS_TOKEN = TOKEN
    with freeze_time(now):
        yield


def scrape(client: Client, **headers: str) -> Samples:
    response = client.get("/metrics", headers={**AUTH, **headers})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    return samples_of(response.content.decode())


def window(now: datetime, job: str, status: str, *, minutes_ago: int, **fields: Any) -> DispatchWindow:
    created = now - timedelta(minutes=minutes_ago)
    mode = {"enqueued": "dispatch", "dispatch_failed": "dispatch-failed"}.get(status, "inline")
    return DispatchWindow.objects.create(
        dispatch_key=f"cron:{job}:{created:%Y-%m-%dT%H:%M}",
        job=job,
        status=status,
        mode=mode,
        source="cron",
        correlation_id="c",
        window_start=created,
        window_seconds=60,
        requested_at=created,
        created_at=created,
        **fields,
    )


@pytest.fixture
def ledger(now: datetime, make_job: Any, make_job_letter: Any, make_run_letter: Any) -> None:
    """A known ledger: jobs of every status, letters open and resolved, windows in and out of the hour."""
    make_job(run_after=now - timedelta(seconds=120))
    make_job(run_after=now - timedelta(seconds=30))
    make_job(run_after=now + timedelta(minutes=5))  # pending, not due
    make_job(status="running", lease_expires_at=now + timedelta(minutes=1))
    for _ in range(3):
        make_job(status="succeeded", finished_at=now)
    make_job(status="succeeded", finished_at=now - timedelta(hours=2))
    make_job(kind="demo.echo", status="cancelled", finished_at=now)
    make_job_letter("test.fail")  # a dead job and its letter
    make_run_letter()
    make_job_letter("test.fail", resolved_at=now, resolution="resolved")
    window(now, "background-jobs", "enqueued", minutes_ago=1, latency_ms=100)
    window(now, "background-jobs", "enqueued", minutes_ago=2, latency_ms=300)
    window(now, "background-jobs", "dispatch_failed", minutes_ago=3, latency_ms=50)
    window(now, "background-jobs", "inline", minutes_ago=4, latency_ms=7)
    window(now, "counter", "enqueued", minutes_ago=10, duplicate_ticks=3, latency_ms=200)
    window(now, "daily", "enqueued", minutes_ago=120, duplicate_ticks=5, latency_ms=9000)  # before the hour
    FunctionRun.objects.create(
        function_id="cron-counter", dispatch_key="cron:counter:x", run_id="r", duplicates_suppressed=2, started_at=now
    )


def test_metrics__the_values_of_a_known_ledger(client: Client, ledger: None) -> None:
    samples = scrape(client)

    held = {status: value(samples, "jobs", status=status, kind="test.record") for status in HELD}
    assert held == {"pending": 3, "running": 1, "dead": 0}
    assert value(samples, "jobs", status="dead", kind="test.fail") == 2
    assert value(samples, "jobs_due") == 2
    assert value(samples, "queue_lag_seconds") == 120
    assert value(samples, "queue_lag_gate_seconds") == 300
    assert value(samples, "dead_letters_unresolved", source="job", kind="test.fail") == 1
    assert value(samples, "dead_letters_unresolved", source="function_run", kind="cron-counter") == 1
    assert value(samples, "cron_last_tick_age_seconds", job="background-jobs") == 60
    assert value(samples, "cron_last_tick_age_seconds", job="daily") == 7200
    assert ("orchestrator_cron_last_tick_age_seconds", frozenset({("job", "crash")})) not in samples  # never ticked


def test_metrics__the_reconcilers_rows_do_not_make_a_silent_cron_service_look_alive(
    client: Client, now: datetime
) -> None:
    window(now, "counter", "enqueued", minutes_ago=90)  # the cron service's last tick
    DispatchWindow.objects.create(
        dispatch_key="cron:counter:missed", job="counter", status="missed", mode="", source="reconciler",
        correlation_id="r", window_start=now, window_seconds=300, requested_at=now, created_at=now,
    )  # fmt: skip

    samples = scrape(client)

    assert value(samples, "cron_last_tick_age_seconds", job="counter") == 5400


def test_metrics__every_outcome_the_window_ledger_settles_on_is_a_series_of_every_cron_job(client: Client) -> None:
    samples = scrape(client)

    outcomes = {
        (dict(labels)["job"], dict(labels)["outcome"])
        for name, labels in samples
        if name == "orchestrator_windows_total"
    }
    settled = set(DispatchWindow.Status.values) - {"pending"}
    registered = set(cron_jobs())
    assert registered == {"background-jobs", "counter", "crash", "flaky", "daily", "stall"}
    # (The process's counters keep the series of the jobs other tests registered for a while too.)
    assert {(job, outcome) for job in registered for outcome in settled} <= outcomes
    assert ("orchestrator_dead_letters_total", frozenset({("source", "job"), ("kind", "test.fail")})) in samples
    fn = frozenset({("source", "function_run"), ("kind", "background-maintenance")})
    assert ("orchestrator_dead_letters_total", fn) in samples
    assert ("orchestrator_jobs_finished_total", frozenset({("kind", "demo.echo"), ("outcome", "dead")})) in samples


def test_metrics__a_scrape_is_a_bounded_number_of_queries(client: Client, ledger: None, settings: Any) -> None:
    with CaptureQueriesContext(connection) as few_jobs:
        scrape(client)
    settings.CRON_JOBS = [
        *settings.CRON_JOBS,
        *({"name": f"job-{n}", "window_seconds": 60, "callable": "runs.units.maintain"} for n in range(300)),
    ]

    with CaptureQueriesContext(connection) as many_jobs:
        samples = scrape(client)

    assert len(many_jobs) == len(few_jobs) <= 20
    assert value(samples, "windows_total", job="job-299", outcome="inline") == 0


def test_metrics__open_metrics_when_the_scraper_asks_for_it(client: Client) -> None:
    response = client.get("/metrics", headers={**AUTH, "Accept": "application/openmetrics-text; version=1.0.0"})

    assert response["Content-Type"].startswith("application/openmetrics-text; version=1.0.0")
    assert response.content.decode().endswith("# EOF\n")


def test_metrics__refused_without_the_token_in_production(client: Client, settings: Any) -> None:
    settings.DEBUG = False

    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers=AUTH).status_code == 200
    settings.METRICS_TOKEN = ""
    refused = client.get("/metrics", headers=AUTH)
    assert (refused.status_code, refused.json()) == (
        503,
        {"error": "the metrics endpoint is disabled until METRICS_TOKEN is set"},
    )


def test_metrics__without_a_token_only_debug_serves_it(client: Client, settings: Any) -> None:
    settings.DEBUG, settings.METRICS_TOKEN = True, ""

    assert client.get("/metrics").status_code == 200


def test_metrics__get_only(client: Client) -> None:
    response = client.post("/metrics", headers=AUTH)

    assert (response.status_code, response["Allow"]) == (405, "GET, HEAD")
    assert not DeadLetter.objects.exists()
