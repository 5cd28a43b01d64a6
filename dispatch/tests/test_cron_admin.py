"""The admin's Cron jobs page: every registered job with its last window and state; pause, resume, trigger now."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from freezegun import freeze_time

from core.display import when
from core.timefmt import iso_utc
from dispatch import keys
from dispatch.models import CronJobState, DispatchWindow
from dispatch.registry import CronContext, get_cron_job
from dispatch.timetable import next_starts
from testsupport.crons import count_run
from testsupport.models import CronRun

pytestmark = pytest.mark.django_db

PAGE = "/admin/dispatch/cronjobstate/"
COUNT_RUN = "testsupport.crons.count_run"
VIEW = "dispatch.view_cronjobstate"
TRIAGE = "runs.triage_deadletter"


def next_starts_of(job: str, now: datetime) -> list[datetime]:
    cron_job = get_cron_job(job)
    assert cron_job is not None
    return next_starts(cron_job.timetable, now=now, count=4)


def signed_in(make_staff: Callable[..., User], name: str, *perms: str) -> Client:
    browser = Client()
    browser.force_login(make_staff(name, *perms))
    return browser


def messages_of(response: object) -> list[str]:
    return [str(message) for message in response.context["messages"]]  # type: ignore[attr-defined]


def test_cron_jobs_page__lists_every_registered_job_with_its_last_window_and_what_is_due(
    make_staff: Callable[..., User],
) -> None:
    now = timezone.now()
    start = keys.window_start(now, 300) - timedelta(minutes=5)
    DispatchWindow.objects.create(
        dispatch_key=keys.dispatch_key("counter", start), job="counter", status="dispatch_failed", mode="dispatch",
        source="cron", correlation_id="c", window_start=start, window_seconds=300, requested_at=start,
    )  # fmt: skip
    for minutes in (10, 15):
        missed = start - timedelta(minutes=minutes)
        DispatchWindow.objects.create(
            dispatch_key=keys.dispatch_key("counter", missed), job="counter", status="missed", mode="",
            source="reconciler", correlation_id="r", window_start=missed, window_seconds=300, requested_at=now,
        )  # fmt: skip
    viewer = signed_in(make_staff, "viewer", VIEW)

    response = viewer.get(PAGE)

    assert response.status_code == 200
    page = " ".join(response.content.decode().split())
    rows = {row.job.name: row for row in response.context["rows"]}
    assert list(rows) == ["background-jobs", *(entry["name"] for entry in settings.CRON_JOBS)]
    counter = rows["counter"]
    assert (counter.description, counter.catch_up, counter.missed, counter.paused) == (
        "Every 5 minutes, UTC",
        "skip",
        2,
        False,
    )
    first = keys.window_start(now, 300) + timedelta(minutes=5)
    assert counter.next_starts == [first, first + timedelta(minutes=5), first + timedelta(minutes=10)]
    row = page.split('id="cron-job-counter"')[1].split("</tr>")[0]
    assert f"{start:%Y-%m-%d %H:%M}:00 UTC</a>" in row
    assert 'orch-badge--bad" style="background-color: #c0392b">dispatch_failed</span>' in row
    assert '<span class="orch-badge orch-badge--mode">dispatch</span>' in row
    assert "?job=counter&amp;status__exact=missed" in row
    assert "no window yet" in page.split('id="cron-job-crash"')[1].split("</tr>")[0]
    # Viewing needs no more than the view permission; acting needs the triage permission.
    assert "Trigger now</button>" not in page and "Pause…</a>" not in page and '<th scope="col">Actions' not in page
    assert (rows["background-jobs"].description, rows["daily"].description) == (
        "Every minute, UTC",
        "Every day at 00:00, UTC",
    )


def test_cron_jobs_page__an_operator_pauses_with_a_note_and_resumes(make_staff: Callable[..., User]) -> None:
    operator = signed_in(make_staff, "operator", VIEW, TRIAGE)

    form = operator.get(f"{PAGE}counter/pause/")
    empty = operator.post(f"{PAGE}counter/pause/", {"note": "  "})
    paused = operator.post(f"{PAGE}counter/pause/", {"note": "Supplier API down until 16:00"}, follow=True)
    state = CronJobState.objects.get(job="counter")
    row = " ".join(paused.content.decode().split()).split('id="cron-job-counter"')[1].split("</tr>")[0]
    resumed = operator.post(f"{PAGE}counter/resume/", follow=True)
    again = operator.post(f"{PAGE}counter/resume/", follow=True)

    assert (form.status_code, empty.status_code) == (200, 200)
    assert "Write a note" in empty.content.decode()
    assert messages_of(paused) == ["Paused counter: its ticks record their windows as paused until it is resumed."]
    assert (state.paused, state.paused_by.get_username(), state.pause_note) == (  # type: ignore[union-attr]
        True,
        "operator",
        "Supplier API down until 16:00",
    )
    assert 'orch-badge--warn" style="background-color: #a86200">paused</span> by operator' in row
    assert "Supplier API down until 16:00" in row
    assert 'action="/admin/dispatch/cronjobstate/counter/resume/"' in row
    assert messages_of(resumed) == ["Resumed counter: its next tick runs."]
    assert messages_of(again) == ["counter was not paused: nothing changed."]
    assert not CronJobState.objects.get(job="counter").paused
    assert list(LogEntry.objects.order_by("pk").values_list("user__username", "change_message")) == [
        ("operator", "Paused: Supplier API down until 16:00"),
        ("operator", "Resumed."),
    ]


def test_cron_jobs_page__trigger_now_runs_a_one_off_window(make_staff: Callable[..., User]) -> None:
    operator = signed_in(make_staff, "operator", VIEW, TRIAGE)

    response = operator.post(f"{PAGE}counter/trigger/", follow=True)

    window = DispatchWindow.objects.get()
    assert window.dispatch_key.startswith(keys.dispatch_key("counter", keys.window_start(timezone.now(), 300)))
    assert ":manual-" in window.dispatch_key and (window.source, window.status) == ("manual", "inline")
    assert messages_of(response) == [
        f"Triggered counter now: {window.dispatch_key} (mode inline, HTTP-equivalent status 200)."
    ]
    assert CronRun.objects.get().dispatch_key == window.dispatch_key
    assert LogEntry.objects.get().change_message == f"Triggered now: {window.dispatch_key} (mode inline, " + (
        "HTTP-equivalent status 200)."
    )


def test_cron_jobs_page__a_calendar_job_in_words_its_zone_next_fire_times_and_lateness(
    make_staff: Callable[..., User], settings: Any
) -> None:
    settings.CRON_JOBS = [
        {"name": "report", "schedule": "0 9 * * 1-5", "timezone": "Europe/Berlin", "callable": COUNT_RUN}
    ]
    now = timezone.now()
    fires = next_starts_of("report", now)
    last = fires[0] - timedelta(days=7)  # a week ago, same weekday: a fire time
    for days, lateness_ms in ((7, 2_500), (8, -400)):
        start = fires[0] - timedelta(days=days)
        DispatchWindow.objects.create(
            dispatch_key=keys.dispatch_key("report", start), job="report", status="enqueued", mode="dispatch",
            source="cron", correlation_id="c", window_start=start, window_seconds=86_400, requested_at=start,
            lateness_ms=lateness_ms,
        )  # fmt: skip
    CronJobState.objects.create(job="report", drift_ticks=2)
    viewer = signed_in(make_staff, "viewer", VIEW)

    response = viewer.get(PAGE)

    page = " ".join(response.content.decode().split())
    row = page.split('id="cron-job-report"')[1].split("</tr>")[0]
    assert '<div class="orch-cron-schedule">At 09:00, Monday through Friday, Europe/Berlin</div>' in row
    assert "<code>0 9 * * 1-5</code> · catch-up skip" in row
    assert all(f'<div class="orch-time">{when(fire)}</div>' in row for fire in fires[:3])
    assert when(fires[3]) not in row
    assert '<span class="orch-lateness">2.5 s / p95 —</span>' in row and "drift</span> 2 ticks" in row
    assert f"{when(last)}</a>" in row


def test_cron_jobs_page__backfill_lists_the_windows_first_then_runs_those_not_handled(
    make_staff: Callable[..., User],
) -> None:
    operator = signed_in(make_staff, "operator", VIEW, TRIAGE)
    start = keys.window_start(timezone.now(), 300) - timedelta(minutes=30)
    DispatchWindow.objects.create(
        dispatch_key=keys.dispatch_key("counter", start), job="counter", status="enqueued", mode="dispatch",
        source="cron", correlation_id="c", window_start=start, window_seconds=300, requested_at=start,
    )  # fmt: skip
    form = {"first": iso_utc(start), "last": iso_utc(start + timedelta(minutes=10))}

    listed = operator.post(f"{PAGE}counter/backfill/", {**form, "preview": "1"})
    listed_ran_nothing = not DispatchWindow.objects.filter(source="manual").exists()
    ran = operator.post(f"{PAGE}counter/backfill/", {**form, "run": "1"}, follow=True)

    plan = " ".join(listed.content.decode().split()).split('id="backfill-plan"')[1]
    assert plan.count("skipped: handled") == 1 and plan.count("<td>runs</td>") == 2
    assert 'value="Run 2 windows"' in listed.content.decode()
    assert listed_ran_nothing
    manual = sorted(DispatchWindow.objects.filter(source="manual").values_list("window_start", flat=True))
    assert manual == [start + timedelta(minutes=5), start + timedelta(minutes=10)]
    assert CronRun.objects.count() == 2
    outcome = (
        f"2 of 3 windows from {when(start)} to {when(start + timedelta(minutes=10))} ticked, 1 skipped "
        "(already handled)"
    )
    assert messages_of(ran) == [f"Back-filled counter: {outcome}."]
    assert LogEntry.objects.get().change_message == f"Back-filled: {outcome}."


WINDOW_SECONDS_TAKEN = 6.0
_clock: list[Any] = []  # the test's frozen clock, which each slow window moves on


def slow_count_run(ctx: CronContext) -> dict[str, Any]:
    """The `counter` job, taking WINDOW_SECONDS_TAKEN of the frozen clock."""
    _clock[0].tick(WINDOW_SECONDS_TAKEN)
    return count_run(ctx)


def test_cron_jobs_page__backfill_stops_starting_windows_once_the_requests_time_is_spent(
    make_staff: Callable[..., User], settings: Any
) -> None:
    settings.INLINE_TIME_BUDGET_SECONDS = 10.0
    settings.CRON_JOBS = [
        {**entry, "callable": f"{__name__}.slow_count_run"} if entry["name"] == "counter" else entry
        for entry in settings.CRON_JOBS
    ]
    operator = signed_in(make_staff, "operator", VIEW, TRIAGE)
    now = timezone.now()
    start = keys.window_start(now, 300) - timedelta(minutes=30)
    starts = [start + timedelta(minutes=5 * n) for n in range(5)]
    form = {"first": iso_utc(starts[0]), "last": iso_utc(starts[-1]), "run": "1"}

    with freeze_time(now) as frozen:
        _clock[:] = [frozen]
        ran = operator.post(f"{PAGE}counter/backfill/", form, follow=True)

    # 0 s and 6 s into the request: started, oldest first; at 12 s the 10 s were spent: the rest wait.
    ticked = sorted(DispatchWindow.objects.filter(job="counter").values_list("window_start", flat=True))
    assert ticked == starts[:2]
    assert CronRun.objects.count() == 2
    outcome = (
        f"2 of 5 windows from {when(starts[0])} to {when(starts[-1])} ticked, 0 skipped (already handled); "
        f"3 not reached in this request's time (INLINE_TIME_BUDGET_SECONDS=10 s): back-fill again from "
        f"{when(starts[2])}"
    )
    assert messages_of(ran) == [f"Back-filled counter: {outcome}."]
    assert [message.level_tag for message in ran.context["messages"]] == ["warning"]
    assert LogEntry.objects.get().change_message == f"Back-filled: {outcome}."


def test_cron_jobs_page__backfill_refuses_a_future_range_and_changes_nothing(make_staff: Callable[..., User]) -> None:
    operator = signed_in(make_staff, "operator", VIEW, TRIAGE)
    now = timezone.now()
    form = {"first": iso_utc(now - timedelta(hours=1)), "last": iso_utc(now + timedelta(hours=1)), "run": "1"}

    response = operator.post(f"{PAGE}counter/backfill/", form)

    assert response.status_code == 200
    assert "the range ends in the future" in response.content.decode()
    assert not DispatchWindow.objects.exists() and not LogEntry.objects.exists()


@pytest.mark.parametrize(
    ("method", "action"), [("post", "pause"), ("post", "resume"), ("post", "trigger"), ("post", "backfill")]
)
def test_cron_jobs_page__actions_need_the_triage_permission(
    make_staff: Callable[..., User], method: str, action: str
) -> None:
    viewer = signed_in(make_staff, "viewer", VIEW)

    response = getattr(viewer, method)(f"{PAGE}counter/{action}/", {"note": "why", "first": "2026-01-01T00:00Z"})

    assert response.status_code == 403
    assert not CronJobState.objects.filter(paused=True).exists()
    assert not DispatchWindow.objects.exists() and not LogEntry.objects.exists()


def test_cron_jobs_page__needs_the_view_permission_and_acts_only_on_post(make_staff: Callable[..., User]) -> None:
    outsider = signed_in(make_staff, "outsider", "jobs.view_backgroundjob")
    operator = signed_in(make_staff, "operator", VIEW, TRIAGE)

    assert outsider.get(PAGE).status_code == 403
    assert operator.get(f"{PAGE}counter/trigger/").status_code == 403  # a link followed must not run a job
    assert operator.post(f"{PAGE}nope/trigger/").status_code == 403
    assert not DispatchWindow.objects.exists()
