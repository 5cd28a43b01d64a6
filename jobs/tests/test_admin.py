from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from jobs.models import BackgroundJob, QueueHealthSnapshot
from runs.models import DeadLetter

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/jobs/backgroundjob/"


def signed_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


def messages_of(response: Any) -> list[str]:
    """Return the message bar of the page the action redirected to."""
    return [message.message for message in response.context["messages"]]


def listed(response: Any) -> list[int]:
    return [job.pk for job in response.context["cl"].result_list]


@pytest.fixture
def operator(make_staff: Callable[..., User]) -> User:
    return make_staff("operator", "jobs.view_backgroundjob", "jobs.operate_backgroundjob")


def test_background_job_admin__retry_now_and_cancel_act_on_pending_jobs_only(
    make_job: Callable[..., BackgroundJob], operator: User, now: datetime
) -> None:
    far = datetime(2100, 1, 1, tzinfo=UTC)
    waiting = make_job(run_after=far)
    running = make_job(status="running", lease_expires_at=now)
    other = make_job()
    client = signed_in(operator)

    retry = client.post(
        CHANGELIST, {"action": "retry_now", "index": "0", "_selected_action": [waiting.pk, running.pk]}, follow=True
    )
    cancel = client.post(
        CHANGELIST, {"action": "cancel", "index": "0", "_selected_action": [other.pk, running.pk]}, follow=True
    )

    assert messages_of(retry) == ["Made 1 background job due now. Skipped 1: not pending (running)."]
    assert messages_of(cancel) == ["Cancelled 1 background job. Skipped 1: not pending (running)."]
    waiting.refresh_from_db()
    assert waiting.status == "pending" and waiting.run_after < far  # due at the time of the request
    assert [BackgroundJob.objects.get(pk=job.pk).status for job in (other, running)] == ["cancelled", "running"]
    assert sorted(LogEntry.objects.filter(user=operator).values_list("object_id", "change_message")) == sorted(
        [(str(waiting.pk), "Retry now (admin action)."), (str(other.pk), "Cancelled (admin action).")]
    )


def test_background_job_admin__a_viewer_browses_but_cannot_act(
    make_job: Callable[..., BackgroundJob], make_staff: Callable[..., User]
) -> None:
    viewer = make_staff("viewer", "jobs.view_backgroundjob")
    job = make_job()
    client = signed_in(viewer)

    changelist = client.get(CHANGELIST)
    detail = client.get(reverse("admin:jobs_backgroundjob_change", args=[job.pk]))
    cancel = client.post(CHANGELIST, {"action": "cancel", "index": "0", "_selected_action": [job.pk]})

    assert (changelist.status_code, detail.status_code, cancel.status_code) == (200, 200, 200)
    assert changelist.context["action_form"] is None
    assert BackgroundJob.objects.get(pk=job.pk).status == "pending"


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("invoice-7", ["keyed"]),
        ("acme", ["keyed", "buried"]),
        ("cron:background-jobs:2026-03-14T15:09", ["buried"]),  # the drain that dead-lettered it
        ("tick-42", ["buried"]),
        ("id", ["plain"]),
        ("nothing-matches", []),
    ],
)
def test_background_job_changelist__exact_search(
    make_job: Callable[..., BackgroundJob],
    make_job_letter: Callable[..., DeadLetter],
    operator: User,
    now: datetime,
    term: str,
    expected: list[str],
) -> None:
    jobs = {
        "plain": make_job(created_at=now - timedelta(minutes=3)).pk,
        "keyed": make_job(dedupe_key="invoice-7", tenant="acme", created_at=now - timedelta(minutes=2)).pk,
        "buried": make_job_letter(tenant="acme").job_id,
    }
    query = str(jobs["plain"]) if term == "id" else term

    response = signed_in(operator).get(CHANGELIST, {"q": query})

    assert listed(response) == [jobs[name] for name in sorted(expected, key=["buried", "keyed", "plain"].index)]


def test_background_job_detail__links_to_its_dead_letter_and_the_letters_it_requeues(
    make_job_letter: Callable[..., DeadLetter], operator: User, make_staff: Callable[..., User]
) -> None:
    letter = make_job_letter()
    triager = make_staff("triager", "runs.view_deadletter", "runs.triage_deadletter")
    signed_in(triager).post(
        "/admin/runs/deadletter/", {"action": "requeue", "index": "0", "_selected_action": [letter.pk]}
    )
    letter.refresh_from_db()
    client = signed_in(operator)

    dead_page = client.get(reverse("admin:jobs_backgroundjob_change", args=[letter.job_id])).content.decode()
    fresh_page = client.get(reverse("admin:jobs_backgroundjob_change", args=[letter.requeued_job_id])).content.decode()

    assert f'href="/admin/runs/deadletter/{letter.pk}/change/">#{letter.pk} (requeued)' in dead_page
    assert f'href="/admin/runs/deadletter/{letter.pk}/change/">dead letter #{letter.pk}' in fresh_page


def test_background_job_detail__shows_a_tasks_queue_workers_errors_and_return_value(
    make_job: Callable[..., BackgroundJob], operator: User
) -> None:
    errors = [
        {"attempt": n, "exception_class_path": "builtins.ValueError", "traceback": f"ValueError: <try {n}>"}
        for n in (1, 2)
    ]
    job = make_job(
        kind="testsupport.tasks.echo",
        queue="emails",
        status="succeeded",
        attempts=3,
        worker_ids=["w1", "w2", "w3"],
        errors=errors,
        return_value={"sent": 2},
    )

    page = signed_in(operator).get(reverse("admin:jobs_backgroundjob_change", args=[job.pk])).content.decode()

    assert "emails" in page and "w1" in page and "w3" in page
    assert "<summary>attempt 2: builtins.ValueError</summary>" in page
    assert "ValueError: &lt;try 1&gt;" in page  # escaped
    assert "&quot;sent&quot;: 2" in page


def test_queue_health_snapshots__show_their_time_to_the_second_in_utc(
    make_staff: Callable[..., User], now: datetime
) -> None:
    snapshot = QueueHealthSnapshot.objects.create(
        taken_at=now, pending=3, ready=2, running=1, dead=0, lag_seconds=4.5, unresolved_dead_letters=0
    )
    viewer = signed_in(make_staff("viewer", "jobs.view_queuehealthsnapshot"))

    listing = viewer.get("/admin/jobs/queuehealthsnapshot/")
    page = viewer.get(f"/admin/jobs/queuehealthsnapshot/{snapshot.pk}/change/")

    assert listing.status_code == page.status_code == 200
    assert ">2026-03-14 15:09:26 UTC<" in listing.content.decode()
    assert "2026-03-14 15:09:26 UTC" in page.content.decode()
    assert str(snapshot) == "queue health at 2026-03-14 15:09:26 UTC: 2 ready, lag 4.5 s"
