"""The admin's Cron jobs page: every registered job with its last window and state; pause, resume, trigger now."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from dispatch import keys
from dispatch.models import CronJobState, DispatchWindow
from testsupport.models import CronRun

pytestmark = pytest.mark.django_db

PAGE = "/admin/dispatch/cronjobstate/"
VIEW = "dispatch.view_cronjobstate"
TRIAGE = "runs.triage_deadletter"


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
    assert (counter.window, counter.catch_up, counter.missed, counter.paused) == ("5 min", "skip", 2, False)
    assert counter.next_start == keys.window_start(now, 300) + timedelta(minutes=5)
    row = page.split('id="cron-job-counter"')[1].split("</tr>")[0]
    assert f"{start:%Y-%m-%d %H:%M}:00 UTC</a>" in row
    assert 'orch-badge--bad" style="background-color: #c0392b">dispatch_failed</span>' in row
    assert '<span class="orch-badge orch-badge--mode">dispatch</span>' in row
    assert "?job=counter&amp;status__exact=missed" in row
    assert "no window yet" in page.split('id="cron-job-crash"')[1].split("</tr>")[0]
    # Viewing needs no more than the view permission; acting needs the triage permission.
    assert "Trigger now</button>" not in page and "Pause…</a>" not in page and '<th scope="col">Actions' not in page
    assert (rows["background-jobs"].window, rows["daily"].window) == ("1 min", "1 d")


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


@pytest.mark.parametrize(("method", "action"), [("post", "pause"), ("post", "resume"), ("post", "trigger")])
def test_cron_jobs_page__actions_need_the_triage_permission(
    make_staff: Callable[..., User], method: str, action: str
) -> None:
    viewer = signed_in(make_staff, "viewer", VIEW)

    response = getattr(viewer, method)(f"{PAGE}counter/{action}/", {"note": "why"})

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
