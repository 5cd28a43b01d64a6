"""A paused cron job: its ticks answer 200 with mode `paused` and record their windows `paused`; resumed, it runs.

The pause is read by the claim itself: a paused tick is one statement, as a duplicate is.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from dispatch.models import CronJobState, DispatchWindow
from dispatch.registry import get_cron_job
from dispatch.schedule import cron_job_pause, cron_job_resume
from dispatch.services import TickResult, dispatch_tick
from runs.models import FunctionRun
from testsupport.event_api import EventAPI
from testsupport.models import CronRun

pytestmark = pytest.mark.django_db

SECRET = "cron-secret-for-tests"


def tick(*, at: datetime, source: str = "cron", job: str = "counter", **kwargs: Any) -> TickResult:
    cron_job = get_cron_job(job)
    assert cron_job is not None
    return dispatch_tick(job=cron_job, now=timezone.now(), at=at, source=source, correlation_id="c", **kwargs)


@pytest.fixture
def operator(make_staff: Callable[..., User]) -> User:
    return make_staff("operator", "runs.triage_deadletter")


def test_dispatch_tick__a_paused_jobs_tick_records_a_paused_window_and_publishes_nothing(
    event_api: EventAPI, operator: User, django_assert_num_queries: Any
) -> None:
    at = timezone.now()
    assert cron_job_pause(job="counter", user=operator, note="upstream down until 16:00", now=at)

    with django_assert_num_queries(1):  # the claim reads the pause: no round trip more than a duplicate's
        result = tick(at=at)
    with django_assert_num_queries(1):
        again = tick(at=at)

    assert result.status_code == 200
    assert (result.body["mode"], result.body["enqueued"], result.body["duplicate"], result.body["eventIds"]) == (
        "paused",
        False,
        False,
        [],
    )
    assert "summary" not in result.body
    assert (again.status_code, again.body["mode"], again.body["duplicate"]) == (200, "paused", True)
    window = DispatchWindow.objects.get()
    assert (window.status, window.mode, window.source, window.event_ids, window.publish_attempts) == (
        "paused",
        "paused",
        "cron",
        [],
        0,
    )
    assert event_api.events == []
    assert not FunctionRun.objects.exists()


def test_dispatch_tick__an_inline_tick_of_a_paused_job_runs_nothing(operator: User) -> None:
    at = timezone.now()
    cron_job_pause(job="counter", user=operator, note="maintenance window", now=at)

    result = tick(at=at)

    assert (result.status_code, result.body["mode"]) == (200, "paused")
    assert not CronRun.objects.exists()
    assert DispatchWindow.objects.get().status == "paused"


def test_dispatch_tick__resumed_the_next_window_runs_again(event_api: EventAPI, operator: User) -> None:
    at = timezone.now()
    cron_job_pause(job="counter", user=operator, note="upstream down", now=at)
    paused = tick(at=at)

    assert cron_job_resume(job="counter", user=operator, now=timezone.now())
    resumed = tick(at=at + timedelta(minutes=5))

    assert (paused.body["mode"], resumed.status_code, resumed.body["mode"], resumed.body["enqueued"]) == (
        "paused",
        202,
        "dispatch",
        True,
    )
    assert event_api.event_ids() == resumed.body["eventIds"]
    state = CronJobState.objects.get(job="counter")
    assert (state.paused, state.paused_by, state.resumed_by, state.pause_note) == (
        False,
        operator,
        operator,
        "upstream down",
    )


def test_dispatch_tick__an_operators_own_tick_runs_while_the_job_is_paused(operator: User) -> None:
    at = timezone.now()
    cron_job_pause(job="counter", user=operator, note="cron paused; runs by hand", now=at)

    manual = tick(at=at, source="manual")
    forced = tick(at=at, source="manual", force=True)

    assert (manual.body["mode"], forced.body["mode"]) == ("inline", "inline")
    assert CronRun.objects.count() == 2


def test_dispatch_tick__a_failed_window_reclaimed_while_paused_becomes_paused(
    event_api: EventAPI, operator: User
) -> None:
    at = timezone.now()
    event_api.behave("error500")
    failed = tick(at=at)
    cron_job_pause(job="counter", user=operator, note="Inngest is down", now=at)
    event_api.behave("ok")

    again = tick(at=at)

    assert (failed.status_code, again.status_code, again.body["mode"], again.body["duplicate"]) == (
        503,
        200,
        "paused",
        False,
    )
    window = DispatchWindow.objects.get()
    assert (window.status, window.mode, window.claim, window.event_ids, window.error) == ("paused", "paused", 2, [], "")
    assert event_api.events == []


def test_cron_view__answers_200_paused_for_a_paused_job(client: Client, settings: Any, operator: User) -> None:
    settings.CRON_SECRET = SECRET
    cron_job_pause(job="counter", user=operator, note="upstream down", now=timezone.now())

    response = client.get("/api/cron/counter", headers={"Authorization": f"Bearer {SECRET}"})

    assert (response.status_code, response.json()["mode"]) == (200, "paused")


def test_cron_job_pause__twice_changes_nothing_and_resume_of_a_running_job_neither(operator: User) -> None:
    at = timezone.now()

    assert not cron_job_resume(job="counter", user=operator, now=at)
    assert cron_job_pause(job="counter", user=operator, note="first", now=at)
    assert not cron_job_pause(job="counter", user=operator, note="second", now=at + timedelta(minutes=1))

    state = CronJobState.objects.get(job="counter")
    assert (state.paused, state.pause_note, state.paused_at) == (True, "first", at)


@pytest.mark.parametrize(
    ("job", "note", "message"),
    [
        ("counter", "  ", "a note is required: say why the job is paused"),
        ("counter", "x" * 2001, "the note is 2001 characters long; at most 2000 are kept"),
        ("nope", "why", "unknown cron job 'nope'"),
    ],
)
def test_cron_job_pause__refuses_without_a_note_or_a_job(operator: User, job: str, note: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        cron_job_pause(job=job, user=operator, note=note, now=timezone.now())

    assert not CronJobState.objects.filter(paused=True).exists()


def test_dispatch_tick__a_late_tick_of_a_missed_window_is_told_it_was_missed() -> None:
    at = datetime.fromisoformat("2026-03-14T15:05:00+00:00")
    DispatchWindow.objects.create(
        dispatch_key="cron:counter:2026-03-14T15:05", job="counter", status="missed", mode="", source="reconciler",
        correlation_id="r", window_start=at, window_seconds=300, requested_at=at,
    )  # fmt: skip

    late = tick(at=at)

    assert (late.status_code, late.body["mode"], late.body["duplicate"], late.body["summary"]) == (
        200,
        "missed",
        True,
        None,
    )
    assert not CronRun.objects.exists()
