from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from jobs.models import BackgroundJob
from runs import ledger
from runs.models import DeadLetter, FunctionRun
from testsupport.admin import messages_of, signed_in

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/runs/deadletter/"
BROWSE = ("runs.view_deadletter", "runs.view_functionrun", "runs.view_functionrunattempt", "jobs.view_backgroundjob")


@pytest.fixture
def operator(make_staff: Callable[..., User]) -> User:
    return make_staff("operator", *BROWSE, "runs.triage_deadletter")


@pytest.fixture
def viewer(make_staff: Callable[..., User]) -> User:
    return make_staff("viewer", *BROWSE)


def listed(response: Any) -> list[int]:
    return [letter.pk for letter in response.context["cl"].result_list]


def act(client: Client, action: str, letters: list[DeadLetter], **extra: Any) -> Any:
    data = {"action": action, "_selected_action": [letter.pk for letter in letters], "index": "0", **extra}
    return client.post(CHANGELIST, data)


def test_dead_letter_changelist__lists_unresolved_letters_first_newest_first(
    make_job_letter: Callable[..., DeadLetter], operator: User, now: datetime
) -> None:
    old_open = make_job_letter(created_at=now - timedelta(days=2))
    resolved = make_job_letter(created_at=now, resolution="resolved", resolved_at=now, note="n")
    new_open = make_job_letter(created_at=now - timedelta(hours=1))

    response = signed_in(operator).get(CHANGELIST)

    assert response.status_code == 200
    assert listed(response) == [new_open.pk, old_open.pk, resolved.pk]
    assert "3 dead letters" in response.content.decode()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"state": "unresolved"}, ["open_job", "open_run"]),
        ({"state": "resolved"}, ["resolved"]),
        ({"source__exact": "function_run"}, ["open_run"]),
        ({"kind": "test.fail"}, ["resolved"]),
        ({"scope": "acme"}, ["open_job"]),
        ({"q": "cron:background-jobs:2026-03-14T15:09"}, ["open_job", "resolved"]),
        ({"q": "tick-7"}, ["open_run"]),
        ({"q": "run-1"}, ["open_run"]),
        ({"q": "cron:background-jobs"}, []),  # exact match, not a prefix
    ],
)
def test_dead_letter_changelist__filters_and_exact_search(
    make_job_letter: Callable[..., DeadLetter],
    make_run_letter: Callable[..., DeadLetter],
    operator: User,
    now: datetime,
    query: dict[str, str],
    expected: list[str],
) -> None:
    letters = {
        "open_job": make_job_letter(tenant="acme", created_at=now - timedelta(minutes=1)),
        "open_run": make_run_letter(created_at=now - timedelta(minutes=2)),
        "resolved": make_job_letter("test.fail", resolution="resolved", resolved_at=now, note="n"),
    }

    response = signed_in(operator).get(CHANGELIST, query)

    assert response.status_code == 200
    assert listed(response) == [letters[name].pk for name in expected]


def test_dead_letter_changelist__the_filters_list_the_values_present(
    make_job_letter: Callable[..., DeadLetter], operator: User
) -> None:
    make_job_letter("test.record", tenant="acme")
    make_job_letter("test.fail")

    response = signed_in(operator).get(CHANGELIST)

    cl = response.context["cl"]
    filters = {spec.title: [choice["display"] for choice in spec.choices(cl)] for spec in cl.filter_specs}
    assert filters["kind"] == ["All", "test.fail", "test.record"]
    assert filters["tenant"] == ["All", "acme", "(no tenant)"]  # a letter of no tenant (`global`), as jobs say it
    assert filters["state"] == ["All", "Unresolved", "Requeued", "Resolved"]


def test_dead_letter_admin__requeue_reports_what_it_did_and_skipped(
    make_job_letter: Callable[..., DeadLetter], operator: User, now: datetime
) -> None:
    first, second = make_job_letter(), make_job_letter()
    resolved = make_job_letter(resolution="resolved", resolved_at=now, note="n")

    response = act(signed_in(operator), "requeue", [first, second, resolved])

    assert response.status_code == 302
    assert messages_of(response) == ["Requeued 2 dead letters. Skipped 1: already resolved."]
    for letter in (first, second):
        letter.refresh_from_db()
        assert (letter.resolution, letter.resolved_by) == ("requeued", operator)
        assert letter.requeued_job is not None and letter.requeued_job.status == "pending"
    resolved.refresh_from_db()
    assert resolved.requeued_job is None
    # Each requeued letter's history names who did it.
    entries = LogEntry.objects.filter(user=operator).order_by("object_id")
    assert [(entry.object_id, entry.change_message) for entry in entries] == [
        (str(first.pk), "Requeued (admin action)."),
        (str(second.pk), "Requeued (admin action)."),
    ]


def test_dead_letter_admin__resolve_asks_for_a_note_then_resolves_the_open_letters(
    make_job_letter: Callable[..., DeadLetter], operator: User, now: datetime
) -> None:
    letter = make_job_letter()
    resolved = make_job_letter(resolution="resolved", resolved_at=now, note="earlier")
    client = signed_in(operator)

    confirmation = act(client, "resolve", [letter, resolved])

    assert confirmation.status_code == 200
    page = " ".join(confirmation.content.decode().split())
    assert "1 of the 2 selected dead letters is unresolved" in page
    assert f"#{resolved.pk} test.record (Background job): already resolved, skipped" in page
    assert DeadLetter.objects.get(pk=letter.pk).resolution == ""  # Nothing happens before the note.

    response = client.post(
        CHANGELIST,
        {"action": "resolve", "post": "yes", "_selected_action": [letter.pk, resolved.pk], "note": "duplicate of #12"},
    )

    assert response.status_code == 302
    assert messages_of(response) == ["Resolved 1 dead letter. Skipped 1: already resolved."]
    letter.refresh_from_db()
    assert (letter.resolution, letter.note, letter.resolved_by) == ("resolved", "duplicate of #12", operator)
    assert letter.resolved_at is not None
    resolved.refresh_from_db()
    assert resolved.note == "earlier"


def test_dead_letter_admin__resolve_without_a_note_shows_the_error_and_changes_nothing(
    make_job_letter: Callable[..., DeadLetter], operator: User
) -> None:
    letter = make_job_letter()

    response = signed_in(operator).post(
        CHANGELIST, {"action": "resolve", "post": "yes", "_selected_action": [letter.pk], "note": "  "}
    )

    assert response.status_code == 200
    assert "Write a note" in response.content.decode()
    assert response.context["form"].errors == {"note": ["This field is required."]}
    assert DeadLetter.objects.get(pk=letter.pk).resolution == ""


def test_dead_letter_admin__requeue_all_matching_hundreds_at_once(
    make_job_letter: Callable[..., DeadLetter], operator: User, now: datetime
) -> None:
    letters = [make_job_letter(payload={"n": n}) for n in range(300)]
    make_job_letter(resolution="resolved", resolved_at=now, note="n")

    response = signed_in(operator).post(
        f"{CHANGELIST}?state=unresolved",
        {"action": "requeue", "select_across": "1", "index": "0", "_selected_action": [letters[0].pk]},
    )

    assert messages_of(response) == ["Requeued 300 dead letters."]
    assert BackgroundJob.objects.filter(status="pending").count() == 300


def test_dead_letter_admin__refuses_a_selection_over_the_limit(
    make_job_letter: Callable[..., DeadLetter], operator: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("core.admin.ACTION_LIMIT", 2)
    letters = [make_job_letter() for _ in range(3)]

    response = act(signed_in(operator), "requeue", letters)

    assert messages_of(response) == [
        "Nothing done: more than 2 rows are selected. Narrow the list with a filter and act on at most 2 at a time."
    ]
    assert not BackgroundJob.objects.filter(status="pending").exists()


def test_dead_letter_admin__a_viewer_browses_but_cannot_act(
    make_job_letter: Callable[..., DeadLetter], viewer: User
) -> None:
    letter = make_job_letter()
    client = signed_in(viewer)

    changelist = client.get(CHANGELIST)
    detail = client.get(reverse("admin:runs_deadletter_change", args=[letter.pk]))
    requeue = act(client, "requeue", [letter])
    resolve = client.post(
        CHANGELIST, {"action": "resolve", "post": "yes", "_selected_action": [letter.pk], "note": "sneaky"}
    )

    assert (changelist.status_code, detail.status_code) == (200, 200)
    assert listed(changelist) == [letter.pk]
    assert changelist.context["action_form"] is None  # No action is offered...
    assert "ValueError: boom" in detail.content.decode()
    # ... and a hand-made POST of one is not run: the changelist is shown again, unchanged.
    assert (requeue.status_code, resolve.status_code) == (200, 200)
    assert messages_of(requeue) == messages_of(resolve) == []
    letter.refresh_from_db()
    assert (letter.resolution, letter.note) == ("", "")
    assert not BackgroundJob.objects.filter(status="pending").exists()


def test_dead_letter_admin__the_triage_permission_offers_the_actions(operator: User) -> None:
    response = signed_in(operator).get(CHANGELIST)

    choices = [name for name, _ in response.context["action_form"].fields["action"].choices]
    assert choices == ["", "requeue", "resolve"]


def test_dead_letter_admin__a_user_without_view_permission_is_refused(make_staff: Callable[..., User]) -> None:
    stranger = make_staff("stranger", "jobs.view_backgroundjob")

    assert signed_in(stranger).get(CHANGELIST).status_code == 403


def test_dead_letter_detail__links_to_its_run_its_window_and_its_requeued_job(
    make_job_letter: Callable[..., DeadLetter],
    make_run_letter: Callable[..., DeadLetter],
    operator: User,
    now: datetime,
) -> None:
    job_letter, run_letter = make_job_letter(), make_run_letter()
    act(signed_in(operator), "requeue", [job_letter])
    job_letter.refresh_from_db()
    client = signed_in(operator)

    job_page = client.get(reverse("admin:runs_deadletter_change", args=[job_letter.pk])).content.decode()
    run_page = client.get(reverse("admin:runs_deadletter_change", args=[run_letter.pk])).content.decode()

    assert f'href="/admin/jobs/backgroundjob/{job_letter.job_id}/change/">job #{job_letter.job_id}' in job_page
    assert f'href="/admin/jobs/backgroundjob/{job_letter.requeued_job_id}/change/"' in job_page
    assert f'href="/admin/runs/functionrun/{run_letter.function_run_id}/change/">run #' in run_page
    assert "/admin/dispatch/dispatchwindow/?dispatch_key=cron%3Acounter%3A2026-03-14T14%3A05" in run_page


def test_function_run_changelist__filters_searches_and_links_to_dead_letters(
    make_run_letter: Callable[..., DeadLetter], operator: User, now: datetime
) -> None:
    letter = make_run_letter()
    ok = FunctionRun.objects.create(
        function_id="process-background-jobs", dispatch_key="cron:background-jobs:2026-03-14T15:09", run_id="r-ok",
        status="succeeded", started_at=now, duration_ms=1250, scope="global", source="cron",
    )  # fmt: skip
    client = signed_in(operator)

    everything = client.get("/admin/runs/functionrun/")
    failed = client.get("/admin/runs/functionrun/", {"status__exact": "failed"})
    by_function = client.get("/admin/runs/functionrun/", {"function_id": "process-background-jobs"})
    by_key = client.get("/admin/runs/functionrun/", {"q": "cron:background-jobs:2026-03-14T15:09"})

    assert listed(everything) == [ok.pk, letter.function_run_id]  # same start: the newer row first
    assert listed(failed) == [letter.function_run_id]
    assert listed(by_function) == listed(by_key) == [ok.pk]
    page = everything.content.decode()
    assert "1.2 s" in page  # the duration column
    assert f'href="/admin/runs/deadletter/{letter.pk}/change/">#{letter.pk} (unresolved)' in page


def test_function_run_detail__shows_its_attempts_inline(operator: User, now: datetime) -> None:
    run = FunctionRun.objects.create(
        function_id="cron-counter", dispatch_key="cron:counter:2026-03-14T15:05", run_id="r-1", status="failed",
        attempts=2, started_at=now, terminal_reason="retries exhausted", last_error="boom",
    )  # fmt: skip
    run.attempt_rows.create(step="run", attempt=1, status="failed", started_at=now, error="first boom")
    run.attempt_rows.create(step="run", attempt=2, status="failed", started_at=now, error="second boom")

    page = signed_in(operator).get(reverse("admin:runs_functionrun_change", args=[run.pk])).content.decode()

    assert "first boom" in page and "second boom" in page
    assert "/admin/dispatch/dispatchwindow/?dispatch_key=cron%3Acounter%3A2026-03-14T15%3A05" in page


def test_function_run_changelist__each_row_names_its_window_in_window_order(operator: User, now: datetime) -> None:
    """Issue 21: runs of one function read as the windows they ran for (not a cut key), newest window first."""
    # A backlog drained late: the runs start in the order they were picked up, not in their windows' order.
    claims = [
        ("cron-counter", "cron:counter:2026-03-14T14:05", 3),
        ("cron-counter", "cron:counter:2026-03-14T14:15", 2),
        ("process-background-jobs", "cron:background-jobs:2026-03-14T14:10", 1),
        ("cron-counter", "cron:counter:2026-03-01T09:00:manual-0a1b2c3d", 4),
        ("cron-counter", "invalid:run-9", 0),  # a refused payload's key names no window: filed when it ran
    ]
    for function_id, key, minutes_later in claims:
        ledger.run_claim(
            function_id=function_id, dispatch_key=key, run_id=f"run-{key}", correlation_id="c", source="cron",
            scope="global", step=None, now=now + timedelta(minutes=minutes_later),
        )  # fmt: skip
    client = signed_in(operator)

    runs = client.get("/admin/runs/functionrun/")
    header = runs.content.decode().split("<thead>")[1].split("</thead>")[0]
    by_function = header.split("column-function")[1].split('href="')[1].split('"')[0].replace("&amp;", "&")
    march_1 = client.get("/admin/runs/functionrun/", {"window_start__month": "3", "window_start__day": "1"})

    assert window_cells(runs) == [
        "invalid:run-9",  # 15:09, when it ran
        "2026-03-14 14:15:00 UTC",
        "2026-03-14 14:10:00 UTC",
        "2026-03-14 14:05:00 UTC",
        "2026-03-01 09:00:00 UTC",  # a manual re-run of an old window sits with that window
    ]
    assert window_cells(client.get(f"/admin/runs/functionrun/{by_function}")) == [
        "invalid:run-9",
        "2026-03-14 14:15:00 UTC",
        "2026-03-14 14:05:00 UTC",
        "2026-03-01 09:00:00 UTC",
        "2026-03-14 14:10:00 UTC",  # process-background-jobs, after cron-counter
    ]
    assert [run.dispatch_key for run in march_1.context["cl"].result_list] == [
        "cron:counter:2026-03-01T09:00:manual-0a1b2c3d"
    ]


def window_cells(response: Any) -> list[str]:
    """Return the texts of the run list's window column, top to bottom."""
    page = response.content.decode()
    return [row.split("field-window")[1].split("</")[0].rsplit(">", 1)[1] for row in page.split("<tr")[2:]]


def test_dead_letter_admin__a_requeue_whose_rerun_fails_says_it_left_a_new_letter(
    make_run_letter: Callable[..., DeadLetter], operator: User
) -> None:
    """Issue 21: the crashing re-run's own dead letter is named in the message bar, not found later by surprise."""
    letter = make_run_letter("cron-crash")

    response = act(signed_in(operator), "requeue", [letter])

    fresh = DeadLetter.objects.exclude(pk=letter.pk).get()
    (message,) = messages_of(response)
    assert message.startswith("Requeued 0 dead letters. Skipped 1: the re-run failed: inline run crashed: cron-crash")
    assert message.endswith(f"its failure is a new unresolved dead letter, #{fresh.pk} ({fresh.dispatch_key}).")
    assert (fresh.resolution, DeadLetter.objects.get(pk=letter.pk).resolution) == ("", "")


def test_dead_letter_page__every_time_in_one_format_and_no_tenant_as_a_dash(
    make_job_letter: Callable[..., DeadLetter], operator: User, now: datetime
) -> None:
    """Issue 21: a requeued letter's page said `2026-03-14 15:09:26.500000+00:00` beside `March 14, 2026, 3:09 p.m.`."""
    letter = make_job_letter(created_at=now - timedelta(hours=1))
    client = signed_in(operator)
    act(client, "requeue", [letter])
    DeadLetter.objects.filter(pk=letter.pk).update(resolved_at=now)

    page = " ".join(client.get(reverse("admin:runs_deadletter_change", args=[letter.pk])).content.decode().split())
    listed_page = client.get(CHANGELIST).content.decode()

    fields = page.split('<fieldset class="module aligned')[1]
    times = re.findall(r"<label>([^<]+):</label> <div class=\"readonly\">([^<]*)</div>", fields)
    assert ("Created at", "2026-03-14 14:09:26 UTC") in times
    assert ("Requeued at", "2026-03-14 15:09:26 UTC") in times
    assert "+00:00" not in page and "p.m." not in page
    assert ("Tenant", "—") in times
    tenants = [cell.split("</td>")[0] for cell in listed_page.split('<td class="field-tenant">')[1:]]
    assert tenants == ["—"]
    assert re.search(r'<span title="2026-03-14 14:09:26 UTC">[^<]+ ago</span>', listed_page)  # its moment on hover
