"""A dead letter's own page: the words of its triage state, and its Requeue and Resolve buttons."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from jobs.models import BackgroundJob
from runs.models import DeadLetter
from testsupport.admin import messages_of, signed_in

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/runs/deadletter/"
BROWSE = ("runs.view_deadletter", "runs.view_functionrun", "jobs.view_backgroundjob")


@pytest.fixture
def operator(make_staff: Callable[..., User]) -> User:
    return make_staff("operator", *BROWSE, "runs.triage_deadletter")


def page_of(letter: DeadLetter) -> str:
    return reverse("admin:runs_deadletter_change", args=[letter.pk])


def text(response: Any) -> str:
    return " ".join(response.content.decode().split())


def test_letter_page__a_requeued_letter_says_requeued_by_never_resolved_by(
    make_job_letter: Callable[..., DeadLetter], operator: User
) -> None:
    letter = make_job_letter()
    client = signed_in(operator)
    client.post(reverse("admin:runs_deadletter_requeue", args=[letter.pk]))

    page = text(client.get(page_of(letter)))

    assert "Requeued at:" in page and "Requeued by:" in page and "Requeued as:" in page
    assert "Resolved by" not in page and "Resolved at" not in page and "Note:" not in page


def test_letter_page__a_resolved_letter_says_resolved_by_and_its_note(
    make_job_letter: Callable[..., DeadLetter], operator: User, now: datetime
) -> None:
    letter = make_job_letter(resolution="resolved", resolved_at=now, resolved_by=operator, note="known outage")

    page = text(signed_in(operator).get(page_of(letter)))

    assert "Resolved at:" in page and "Resolved by:" in page and "known outage" in page
    assert "Requeued by" not in page
    assert "Requeue</" not in page and 'value="Requeue"' not in page  # nothing left to do: no buttons


def test_letter_page__requeue_button_requeues_it_and_comes_back_to_its_page(
    make_job_letter: Callable[..., DeadLetter], operator: User
) -> None:
    letter = make_job_letter()
    client = signed_in(operator)
    page = client.get(page_of(letter)).content.decode()
    requeue_url = reverse("admin:runs_deadletter_requeue", args=[letter.pk])
    assert f'action="{requeue_url}"' in page and 'value="Requeue"' in page
    assert reverse("admin:runs_deadletter_resolve", args=[letter.pk]) in page

    response = client.post(requeue_url)

    assert (response.status_code, response["Location"]) == (302, page_of(letter))
    assert messages_of(response) == ["Requeued 1 dead letter."]
    letter.refresh_from_db()
    assert (letter.resolution, letter.resolved_by) == ("requeued", operator)
    assert letter.requeued_job is not None and letter.requeued_job.status == "pending"


def test_letter_page__resolve_button_asks_for_the_note_then_resolves_it(
    make_job_letter: Callable[..., DeadLetter], operator: User
) -> None:
    letter = make_job_letter()
    client = signed_in(operator)
    resolve_url = reverse("admin:runs_deadletter_resolve", args=[letter.pk])

    form = client.get(resolve_url)
    empty = client.post(resolve_url, {"note": "  "})
    response = client.post(resolve_url, {"note": "duplicate of #12"})

    assert form.status_code == 200 and 'value="Resolve 1 dead letter"' in form.content.decode()
    assert "Write a note" in empty.content.decode()
    assert (response.status_code, response["Location"]) == (302, page_of(letter))
    assert messages_of(response) == ["Resolved 1 dead letter."]
    letter.refresh_from_db()
    assert (letter.resolution, letter.note, letter.resolved_by) == ("resolved", "duplicate of #12", operator)
    assert not BackgroundJob.objects.filter(status="pending").exists()


def test_letter_page__a_viewer_sees_no_buttons_and_cannot_post_them(
    make_job_letter: Callable[..., DeadLetter], make_staff: Callable[..., User]
) -> None:
    letter = make_job_letter()
    client = signed_in(make_staff("viewer", *BROWSE))

    page = client.get(page_of(letter)).content.decode()
    requeue = client.post(reverse("admin:runs_deadletter_requeue", args=[letter.pk]))
    resolve = client.post(reverse("admin:runs_deadletter_resolve", args=[letter.pk]), {"note": "sneaky"})

    assert 'value="Requeue"' not in page
    assert (requeue.status_code, resolve.status_code) == (403, 403)
    letter.refresh_from_db()
    assert letter.resolution == ""


def test_letter_page__requeue_is_a_post(make_job_letter: Callable[..., DeadLetter], operator: User) -> None:
    letter = make_job_letter()

    response = signed_in(operator).get(reverse("admin:runs_deadletter_requeue", args=[letter.pk]))

    assert response.status_code == 405
    letter.refresh_from_db()
    assert letter.resolution == ""


def test_dead_letter_actions__a_requeued_letter_is_skipped_as_requeued_not_resolved(
    make_job_letter: Callable[..., DeadLetter], operator: User, now: datetime
) -> None:
    requeued, fresh = make_job_letter(), make_job_letter()
    client = signed_in(operator)
    client.post(reverse("admin:runs_deadletter_requeue", args=[requeued.pk]))
    selection = {"_selected_action": [requeued.pk, fresh.pk], "index": "0"}

    confirmation = text(client.post(CHANGELIST, {"action": "resolve", **selection}))
    again = client.post(CHANGELIST, {"action": "requeue", **selection})

    assert "1 of the 2 selected dead letters is unresolved" in confirmation
    assert "The others were already requeued or resolved: they are skipped." in confirmation
    assert f"#{requeued.pk} test.record (Background job): already requeued, skipped" in confirmation
    assert messages_of(again) == ["Requeued 1 dead letter. Skipped 1: already requeued."]
