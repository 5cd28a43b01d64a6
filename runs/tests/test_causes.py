"""Dead letters grouped by cause: each letter's cause written with it, the grouped list, and a cause's actions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Count

from jobs.models import BackgroundJob
from jobs.runner import jobs_run
from runs.causes import cause_groups
from runs.models import DeadLetter
from testsupport.admin import messages_of, signed_in

pytestmark = pytest.mark.django_db

GROUPED = "/admin/runs/deadletter/?group=cause"
BROWSE = ("runs.view_deadletter", "jobs.view_backgroundjob")
REFUSED = "ConnectionError: upstream {host}:443 refused job {n}"
TIMEOUT = "TimeoutError: read timed out after {n} s"


@pytest.fixture
def operator(make_staff: Callable[..., User]) -> User:
    return make_staff("operator", *BROWSE, "runs.triage_deadletter")


@pytest.fixture
def incident(make_job_letter: Callable[..., DeadLetter], now: datetime) -> dict[str, list[DeadLetter]]:
    """Nine letters of three causes over three hours, as the runner writes them (one cause already handled)."""

    def letter(error: str, hours: int, **fields: Any) -> DeadLetter:
        return make_job_letter(created_at=now - timedelta(hours=hours), error=error, **fields)

    return {
        "refused": [letter(REFUSED.format(host=f"10.0.0.{n}", n=800 + n), hours=n) for n in range(1, 5)],
        "timeout": [letter(TIMEOUT.format(n=30 + n), hours=n, kind="test.fail") for n in range(1, 4)],
        "gone": [
            letter("LookupError: invoice 7 not found", hours=1, resolution="resolved", resolved_at=now, note="n"),
            letter("LookupError: invoice 9 not found", hours=2),
        ],
    }


def test_dead_letter__a_dead_job_leaves_a_letter_carrying_its_cause(make_job: Callable[..., BackgroundJob]) -> None:
    make_job(kind="test.fail", max_attempts=1)

    jobs_run(budget_seconds=30)

    letter = DeadLetter.objects.get()
    assert (letter.error, letter.fingerprint) == (
        "ValueError: test.fail failed attempt 1",
        "ValueError: test.fail failed attempt <n>",
    )


def test_cause_groups__count_unresolved_kinds_first_and_last_seen(
    incident: dict[str, list[DeadLetter]], now: datetime
) -> None:
    groups = {group.fingerprint: group for group in cause_groups(DeadLetter.objects.all())}

    refused = groups["ConnectionError: upstream <n>.<n>.<n>.<n>:<n> refused job <n>"]
    assert (refused.letters, refused.unresolved, refused.kinds, refused.kind) == (4, 4, 1, "test.record")
    assert (refused.first_seen, refused.last_seen) == (now - timedelta(hours=4), now - timedelta(hours=1))
    gone = groups["LookupError: invoice <n> not found"]
    assert (gone.letters, gone.unresolved) == (2, 1)
    assert [group.letters for group in cause_groups(DeadLetter.objects.all())] == [4, 3, 2]  # most frequent first


def test_grouped_list__one_row_per_cause_within_the_lists_filters(
    incident: dict[str, list[DeadLetter]], operator: User
) -> None:
    client = signed_in(operator)

    everything = client.get(GROUPED)
    unresolved = client.get(f"{GROUPED}&state=unresolved&kind=test.record")

    assert everything.status_code == 200
    assert [(group.letters, group.unresolved) for group, _ in everything.context["groups"]] == [(4, 4), (3, 3), (2, 1)]
    assert [(group.letters, group.kind) for group, _ in unresolved.context["groups"]] == [
        (4, "test.record"),
        (1, "test.record"),
    ]
    page = unresolved.content.decode()
    assert "List every letter" in page and "2 causes" in page
    # The filters keep the grouping; each cause links to its letters.
    assert 'href="?group=cause&amp;kind=test.record&amp;state=resolved"' in page
    [(_, url)] = [row for row in unresolved.context["groups"] if row[0].letters == 4]
    letters = client.get(f"/admin/runs/deadletter/{url}")
    assert sorted(letter.pk for letter in letters.context["cl"].result_list) == sorted(
        letter.pk for letter in incident["refused"]
    )


def test_grouped_list__requeue_a_cause_reports_done_and_skipped(
    incident: dict[str, list[DeadLetter]], operator: User
) -> None:
    refused = incident["refused"]
    BackgroundJob.objects.filter(dead_letter=refused[0]).update(kind="retired.kind")  # cannot run again

    response = signed_in(operator).post(
        f"{GROUPED}&state=unresolved",
        {"cause_action": "requeue", "_selected_cause": [refused[1].fingerprint]},
    )

    assert (response.status_code, response["Location"]) == (302, f"{GROUPED}&state=unresolved")
    assert messages_of(response) == [
        "Requeued 3 dead letters. Skipped 1: job kind 'retired.kind' is no longer registered."
    ]
    assert BackgroundJob.objects.filter(status="pending").count() == 3
    assert DeadLetter.objects.filter(resolution="requeued").count() == 3
    assert all(letter.resolution == "" for letter in incident["timeout"])  # other causes untouched


def test_grouped_list__a_cause_is_handled_a_bounded_batch_at_a_time(
    incident: dict[str, list[DeadLetter]], operator: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("runs.triage_admin.ACTION_LIMIT", 3)
    causes = [incident["refused"][0].fingerprint, incident["timeout"][0].fingerprint]
    client = signed_in(operator)

    first, second, third = (
        client.post(GROUPED, {"cause_action": "requeue", "_selected_cause": causes}, follow=True) for _ in range(3)
    )

    assert messages_of(first) == [
        "Requeued 3 dead letters.",
        "4 more unresolved dead letters of the selected causes remain (at most 3 are handled at a time): "
        "choose the action again.",
    ]
    assert messages_of(second)[1].startswith("1 more unresolved dead letter of the selected causes remains ")
    assert messages_of(third) == ["Requeued 1 dead letter."]
    assert BackgroundJob.objects.filter(status="pending").count() == 7


def test_grouped_list__resolve_a_cause_asks_for_a_note_then_resolves_its_open_letters(
    incident: dict[str, list[DeadLetter]], operator: User
) -> None:
    cause = incident["gone"][0].fingerprint
    client = signed_in(operator)

    confirmation = client.post(GROUPED, {"cause_action": "resolve", "_selected_cause": [cause]})
    response = client.post(
        GROUPED, {"cause_action": "resolve", "_selected_cause": [cause], "post": "yes", "note": "invoices deleted"}
    )

    page = " ".join(confirmation.content.decode().split())
    assert "1 unresolved dead letter of 1 cause will be resolved with this note" in page
    assert "1 unresolved: LookupError: invoice &lt;n&gt; not found" in page
    assert messages_of(response) == ["Resolved 1 dead letter."]
    assert list(DeadLetter.objects.filter(note="invoices deleted").values_list("pk", flat=True)) == [
        incident["gone"][1].pk
    ]


def test_grouped_list__a_viewer_sees_the_causes_but_cannot_act(
    incident: dict[str, list[DeadLetter]], make_staff: Callable[..., User]
) -> None:
    client = signed_in(make_staff("viewer", *BROWSE))

    page = client.get(GROUPED)
    posted = client.post(GROUPED, {"cause_action": "requeue", "_selected_cause": [incident["refused"][0].fingerprint]})

    assert page.status_code == 200 and len(page.context["groups"]) == 3
    assert "cause_action" not in page.content.decode()
    assert posted.status_code == 403
    assert not BackgroundJob.objects.filter(status="pending").exists()


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's plans")
def test_cause_groups__the_grouping_reads_an_index_not_the_table(incident: dict[str, list[DeadLetter]]) -> None:
    sql, params = (
        DeadLetter.objects.filter(resolution="")
        .values("fingerprint")
        .annotate(n=Count("*"))
        .order_by()
        .query.sql_with_params()
    )
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())

    assert "Index Only Scan using runs_dl_state_cause_idx" in plan


@pytest.mark.django_db(transaction=True)
def test_migration__letters_written_before_it_get_their_cause(
    make_job_letter: Callable[..., DeadLetter],
) -> None:
    letter = make_job_letter()
    DeadLetter.objects.filter(pk=letter.pk).update(error="TimeoutError: read timed out after 31 s")
    executor = MigrationExecutor(connection)
    executor.migrate([("runs", "0003_attempts_per_step")])  # before the cause existed
    executor.loader.build_graph()

    executor.migrate(executor.loader.graph.leaf_nodes())

    letter.refresh_from_db()
    assert letter.fingerprint == "TimeoutError: read timed out after <n> s"
