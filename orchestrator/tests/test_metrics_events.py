"""The event metrics of `GET /metrics` (counters and histograms) move as ticks and jobs happen, once each.

Read with prometheus-client's own parser; every figure is a difference between two
scrapes, since a counter only grows. A job is counted once its outcome commits: a group
whose COMMIT fails and whose jobs run again is counted once, as it ended. Across
processes the counts add up: prometheus-client's multiprocess mode (docs/operations.md).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.contrib.auth.models import User
from django.db import OperationalError
from django.db.models import Count
from django.test import Client
from freezegun import freeze_time

from dispatch.models import DispatchWindow
from dispatch.registry import get_cron_job
from dispatch.schedule import cron_job_pause
from dispatch.services import dispatch_tick
from dispatch.windows import window_claim
from jobs.claim import claim_batch
from jobs.maintenance import prune_finished_jobs, recover_expired_leases
from jobs.models import BackgroundJob
from jobs.recovery import claims_take_back
from jobs.runner import jobs_run
from jobs.services import job_enqueue
from jobs.triage import job_cancel
from runs.models import DeadLetter
from runs.reconcile import reconcile
from testsupport import procs
from testsupport.event_api import EventAPI
from testsupport.live import Gunicorn
from testsupport.prometheus import Samples, samples_of, value

pytestmark = pytest.mark.django_db(transaction=True)  # what is counted is what committed

TOKEN = "metrics-token"


@pytest.fixture(autouse=True)
def _token(settings: Any) -> None:
    settings.METRICS_TOKEN = TOKEN


def scrape(client: Client) -> Samples:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    return samples_of(response.content.decode())


def moved(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


def at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def test_events__ticks_count_their_windows_publishes_duplicates_and_dispatch_latency(
    client: Client, event_api: EventAPI, now: datetime
) -> None:
    job = get_cron_job("background-jobs")
    assert job is not None
    before = scrape(client)

    def tick(moment: datetime) -> int:
        return dispatch_tick(job=job, now=moment, source="cron", correlation_id="c").status_code

    assert [tick(now), tick(now)] == [202, 200]  # dispatched, then a duplicate of the same window
    event_api.behave("error500")
    assert tick(now + timedelta(minutes=1)) == 503
    after = scrape(client)

    labels = {"job": "background-jobs"}
    assert moved(before, after, "windows_total", **labels, outcome="enqueued") == 1
    assert moved(before, after, "windows_total", **labels, outcome="dispatch_failed") == 1
    assert moved(before, after, "duplicate_ticks_total", **labels) == 1
    assert moved(before, after, "publishes_total", **labels) == 2
    assert moved(before, after, "publish_failures_total", **labels) == 1
    assert moved(before, after, "dispatch_latency_seconds_count", **labels) == 2
    assert moved(before, after, "dispatch_latency_seconds_bucket", **labels, le="+Inf") == 2
    assert moved(before, after, "dispatch_latency_seconds_sum", **labels) > 0


def test_events__the_first_cron_tick_of_each_window_observes_its_lateness(
    client: Client, now: datetime, settings: Any
) -> None:
    quarter = {"name": "quarter", "schedule": "*/15 * * * *", "callable": "testsupport.crons.count_run"}
    settings.CRON_JOBS = [*settings.CRON_JOBS, quarter]  # the default 30 s tolerance
    job = get_cron_job("quarter")
    assert job is not None
    fire = now.replace(minute=15, second=0, microsecond=0)
    before = scrape(client)

    def tick(moment: datetime, *, source: str = "cron") -> None:
        assert dispatch_tick(job=job, now=moment, source=source, correlation_id="c").status_code == 200

    tick(fire + timedelta(seconds=12))  # 12 s late
    tick(fire + timedelta(seconds=20))  # a duplicate of that window: its lateness is the first tick's
    tick(fire + timedelta(minutes=15, seconds=-10))  # 10 s early for the next fire time: on time
    tick(fire + timedelta(minutes=30, seconds=3), source="manual")  # an operator's tick is not the cron service's
    after = scrape(client)

    lateness = {"job": "quarter"}
    assert moved(before, after, "cron_tick_lateness_seconds_count", **lateness) == 2
    assert moved(before, after, "cron_tick_lateness_seconds_bucket", **lateness, le="0.25") == 1
    assert moved(before, after, "cron_tick_lateness_seconds_bucket", **lateness, le="10.0") == 1
    assert moved(before, after, "cron_tick_lateness_seconds_bucket", **lateness, le="15.0") == 2
    assert moved(before, after, "cron_tick_lateness_seconds_sum", **lateness) == 12
    assert moved(before, after, "windows_total", **lateness, outcome="inline") == 3


def test_events__every_window_outcome_and_dead_letter_is_counted_as_the_ledgers_record_it(
    client: Client, settings: Any, make_staff: Callable[..., User]
) -> None:
    t0 = datetime.fromisoformat("2026-03-14T12:00:00+00:00")
    reconciled = t0 + timedelta(minutes=60, seconds=30)
    settings.CRON_JOBS = [
        {"name": name, "window_seconds": seconds, "callable": f"testsupport.crons.{callable_}"}
        for name, seconds, callable_ in [
            ("counter", 300, "count_run"),
            ("crash", 60, "crash"),
            ("daily", 86400, "count_run"),
        ]
    ]
    counter, crash, daily = (get_cron_job(name) for name in ("counter", "crash", "daily"))
    assert counter is not None and crash is not None and daily is not None
    before = scrape(client)

    assert dispatch_tick(job=counter, now=t0, source="cron", correlation_id="c").status_code == 200
    dead_tick = window_claim(
        dispatch_key="cron:crash:2026-03-14T12:59", job="crash", window_start=t0 + timedelta(minutes=59),
        window_seconds=60, mode="inline", source="manual", correlation_id="dead", event_ids=[], now=reconciled,
    )  # fmt: skip
    DispatchWindow.objects.filter(pk=dead_tick.window.pk).update(updated_at=t0)  # its tick died long ago
    reconcile(now=reconciled)  # counter's windows since its tick: missed; the dead tick's: abandoned
    assert dispatch_tick(job=crash, now=reconciled, source="cron", correlation_id="c").status_code == 500
    cron_job_pause(job="daily", user=make_staff("ops"), note="supplier down until Monday", now=reconciled)
    assert dispatch_tick(job=daily, now=reconciled, source="cron", correlation_id="c").status_code == 200
    after = scrape(client)

    windows = DispatchWindow.objects.values_list("job", "status").annotate(n=Count("pk")).order_by()
    assert {outcome for _, outcome, _ in windows} == {"inline", "missed", "abandoned", "paused"}
    for job, outcome, n in windows:
        assert moved(before, after, "windows_total", job=job, outcome=outcome) == n, (job, outcome)
    letters = DeadLetter.objects.values_list("source", "kind").annotate(n=Count("pk")).order_by()
    assert [(source, kind) for source, kind, _ in letters] == [("function_run", "cron-crash")]
    for source, kind, n in letters:
        assert moved(before, after, "dead_letters_total", source=source, kind=kind) == n


def test_events__jobs_count_their_outcomes_dead_letters_queue_wait_and_run_time(client: Client, now: datetime) -> None:
    for _ in range(3):
        job_enqueue(kind="test.record", run_after=now - timedelta(seconds=45), now=now - timedelta(minutes=1))
    job_enqueue(kind="test.fail", max_attempts=1, now=now)
    job_enqueue(kind="test.fail", max_attempts=2, now=now)
    before = scrape(client)

    summary = jobs_run(budget_seconds=30, clock=at(now))

    after = scrape(client)
    assert (summary.succeeded, summary.dead, summary.retried) == (3, 1, 1)
    assert moved(before, after, "jobs_finished_total", kind="test.record", outcome="succeeded") == 3
    assert moved(before, after, "jobs_finished_total", kind="test.fail", outcome="dead") == 1
    assert moved(before, after, "job_retries_total", kind="test.fail") == 1
    assert moved(before, after, "dead_letters_total", source="job", kind="test.fail") == 1
    assert moved(before, after, "job_run_seconds_count", kind="test.record") == 3
    assert moved(before, after, "job_run_seconds_count", kind="test.fail") == 2
    # Each attempt's wait from its due time to its start: three waited 45 s, two none at all.
    wait = {"queue": "default"}
    assert moved(before, after, "job_queue_wait_seconds_count", **wait) == 5
    assert moved(before, after, "job_queue_wait_seconds_bucket", **wait, le="30.0") == 2
    assert moved(before, after, "job_queue_wait_seconds_bucket", **wait, le="60.0") == 5
    assert moved(before, after, "job_queue_wait_seconds_sum", **wait) == 135


def test_events__a_group_whose_commit_fails_is_counted_once_as_its_jobs_ended(
    client: Client, now: datetime, settings: Any
) -> None:
    settings.JOBS_GROUP_MAX_MS = 600_000
    job_enqueue(kind="test.record", priority=3, now=now)
    job_enqueue(kind="test.dangling_reference", priority=2, max_attempts=2, now=now)  # its COMMIT fails
    job_enqueue(kind="test.record", priority=1, now=now)
    before = scrape(client)

    summary = jobs_run(budget_seconds=30, clock=at(now))

    after = scrape(client)
    assert (summary.succeeded, summary.retried) == (2, 1)
    assert moved(before, after, "jobs_finished_total", kind="test.record", outcome="succeeded") == 2
    assert moved(before, after, "job_retries_total", kind="test.dangling_reference") == 1
    assert moved(before, after, "job_run_seconds_count", kind="test.record") == 2


def test_events__lost_attempts_and_cancelled_jobs_are_counted_once_as_they_ended(client: Client, now: datetime) -> None:
    for max_attempts in (1, 2, 1, 2):
        job_enqueue(kind="test.record", max_attempts=max_attempts, now=now)
    waiting = job_enqueue(kind="test.record", run_after=now + timedelta(hours=1), now=now).job
    claimed = claim_batch(now=now, limit=4, worker="host:1:abc")
    expired, lost = claimed[:2], claimed[2:]  # the worker of two died; the other two's lost its database
    BackgroundJob.objects.filter(pk__in=[job.pk for job in expired]).update(started_at=now)
    for job in lost:
        job.started_at = now
    before = scrape(client)

    claims_take_back(claims=lost, error=OperationalError("server closed"), lost_at=now, now=now)
    recover_expired_leases(now=now + timedelta(minutes=5))
    job_cancel(job_ids=[waiting.pk], by="ops", now=now)

    after = scrape(client)
    kind = {"kind": "test.record"}
    # Of each pair, the job on its last attempt died and the other is due again: lost attempts count as failures.
    assert moved(before, after, "jobs_finished_total", **kind, outcome="dead") == 2
    assert moved(before, after, "job_retries_total", **kind) == 2
    assert moved(before, after, "jobs_finished_total", **kind, outcome="cancelled") == 1
    assert moved(before, after, "dead_letters_total", source="job", **kind) == 2
    assert moved(before, after, "job_run_seconds_count", **kind) == 0  # a lost attempt has no end to time


@pytest.mark.slow
def test_events__worker_processes_add_up_and_outlive_restarts_and_pruning(
    client: Client, now: datetime, settings: Any, tmp_path: Path
) -> None:
    shared = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    with freeze_time(now):
        for n in range(40):
            job_enqueue(kind="test.record", queue=("default", "emails")[n % 2], now=now)

    # Two workers, one queue each, so that both count.
    workers = [
        procs.manage("run_jobs", "--queue", queue, "--budget", "30", env=procs.child_env(**shared))
        for queue in ("default", "emails")
    ]
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
    settings.PROMETHEUS_MULTIPROC_DIR = str(tmp_path)  # this process serves what every process counted
    first = scrape(client)

    assert len(list(tmp_path.glob("counter_*.db"))) == 2  # one file per process that counted
    assert value(first, "jobs_finished_total", kind="test.record", outcome="succeeded") == 40
    # A worker started later (a restart, a deploy) adds to the same counters.
    with freeze_time(now):
        for _ in range(10):
            job_enqueue(kind="test.record", now=now)
    assert procs.run_manage("run_jobs", "--budget", "30", env=procs.child_env(**shared)).returncode == 0
    # Retention pruning deletes the finished rows: the counters are not rows, and do not go down.
    assert prune_finished_jobs(now=now + timedelta(days=400)) == 50
    assert not BackgroundJob.objects.exists()
    second = scrape(client)
    assert value(second, "jobs_finished_total", kind="test.record", outcome="succeeded") == 50
    assert value(second, "job_run_seconds_count", kind="test.record") == 50


@pytest.mark.slow
def test_events__gunicorn_workers_add_up(event_api_only: EventAPI, tmp_path: Path) -> None:
    env = {
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "CRON_SECRET": "s",
        "METRICS_TOKEN": TOKEN,
        "INNGEST_EVENT_KEY": "test-event-key",
        "INNGEST_SIGNING_KEY": "signkey-test-" + "5e" * 32,
        "INNGEST_EVENT_API_BASE_URL": event_api_only.url,
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
        "INNGEST_PUBLISH_TIMEOUT_SECONDS": "20",
    }
    with Gunicorn(workers=2, **env) as server:
        # The first tick holds one (sync) worker while its publish is held; the duplicates go to the other.
        event_api_only.behave("hold")
        answers: list[int] = []

        def tick() -> None:
            response = httpx.get(
                f"{server.url}/api/cron/background-jobs", headers={"Authorization": "Bearer s"}, timeout=60
            )
            answers.append(response.status_code)

        first = threading.Thread(target=tick)
        first.start()
        assert event_api_only.wait_for_held()
        for _ in range(5):
            tick()
        event_api_only.release_held("ok")
        first.join(timeout=60)
        metrics = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)

    assert sorted(answers) == [200] * 5 + [202]
    samples = samples_of(metrics.text)
    assert len({path.name for path in tmp_path.glob("counter_*.db")}) == 2  # both workers counted
    assert value(samples, "windows_total", job="background-jobs", outcome="enqueued") == 1
    assert value(samples, "duplicate_ticks_total", job="background-jobs") == 5
    assert value(samples, "dispatch_latency_seconds_count", job="background-jobs") == 1


@pytest.fixture
def event_api_only() -> Iterator[EventAPI]:
    """A loopback event API for a gunicorn child (the test process's own settings stay as they are)."""
    with EventAPI(event_key="test-event-key") as api:
        yield api


@pytest.mark.slow
def test_requests__metrics_per_view_and_of_the_database_when_asked_for() -> None:
    env = {"DEBUG": "false", "ALLOWED_HOSTS": "127.0.0.1", "METRICS_TOKEN": TOKEN, "METRICS_REQUESTS": "true"}
    with Gunicorn(workers=2, **env) as server:
        for _ in range(3):
            assert httpx.get(f"{server.url}/api/health", timeout=30).status_code == 200
        metrics = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)

    samples = samples_of(metrics.text)
    by_view = (
        "django_http_requests_latency_seconds_by_view_method_count",
        frozenset({("view", "health"), ("method", "GET")}),
    )
    assert samples[by_view] == 3  # both workers' requests, whichever answered the scrape
    assert samples[("django_db_execute_total", frozenset({("alias", "default"), ("vendor", "postgresql")}))] > 0
