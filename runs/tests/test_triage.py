from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from freezegun import freeze_time

from dispatch.models import DispatchWindow
from dispatch.registry import CronContext
from jobs.models import BackgroundJob
from jobs.services import job_enqueue
from orchestrator.slo import slo_report_build
from runs.models import DeadLetter, FunctionRun
from runs.triage import OUT_OF_TIME, dead_letter_requeue, dead_letter_resolve
from testsupport.crons import count_run
from testsupport.event_api import EventAPI
from testsupport.models import CronRun

pytestmark = pytest.mark.django_db

MANUAL_KEY_RE = r"cron:counter:2026-03-14T14:(\d\d):manual-[0-9a-f]{8}"


@pytest.fixture
def operator(make_staff: Callable[..., User]) -> User:
    return make_staff("operator", "runs.view_deadletter", "runs.triage_deadletter")


def refreshed(letter: DeadLetter) -> DeadLetter:
    return DeadLetter.objects.get(pk=letter.pk)


def test_dead_letter_requeue__a_job_letter_gets_a_fresh_pending_job_linked_back(
    make_job_letter: Callable[..., DeadLetter], operator: User, now: datetime
) -> None:
    letter = make_job_letter("test.record", tenant="acme", payload={"invoice": 7})
    later = now + timedelta(minutes=5)

    report = dead_letter_requeue(letter_ids=[letter.pk], user=operator, now=later)

    assert report.message(verb="Requeued", singular="dead letter", plural="dead letters") == ("Requeued 1 dead letter.")
    letter = refreshed(letter)
    assert (letter.resolution, letter.resolved_at, letter.resolved_by) == ("requeued", later, operator)
    fresh = letter.requeued_job
    assert fresh is not None and fresh.pk != letter.job_id
    assert (fresh.kind, fresh.payload, fresh.tenant, fresh.status) == ("test.record", {"invoice": 7}, "acme", "pending")
    assert (fresh.max_attempts, fresh.priority, fresh.attempts, fresh.run_after) == (3, 7, 0, later)
    # The dead job itself is history: left as it was.
    assert letter.job is not None and letter.job.status == "dead"


def test_dead_letter_requeue__skips_resolved_letters_and_unregistered_kinds(
    make_job_letter: Callable[..., DeadLetter], operator: User, now: datetime
) -> None:
    ready = make_job_letter()
    done = make_job_letter(resolution="resolved", resolved_at=now, note="known issue")
    orphan = make_job_letter("test.record")
    BackgroundJob.objects.filter(dead_letter=orphan).update(kind="retired.kind")

    report = dead_letter_requeue(letter_ids=[ready.pk, done.pk, orphan.pk], user=operator, now=now)

    assert report.done == [ready.pk]
    assert report.message(verb="Requeued", singular="dead letter", plural="dead letters") == (
        "Requeued 1 dead letter. Skipped 2: 1 already resolved; 1 job kind 'retired.kind' is no longer registered."
    )
    assert refreshed(done).resolution == "resolved" and refreshed(done).requeued_job is None
    assert refreshed(orphan).resolution == ""
    assert BackgroundJob.objects.filter(status="pending").count() == 1


def test_dead_letter_requeue__a_job_letter_keeps_its_dedupe_key(
    make_job_letter: Callable[..., DeadLetter], operator: User, now: datetime
) -> None:
    letter = make_job_letter(tenant="acme")
    BackgroundJob.objects.filter(dead_letter=letter).update(dedupe_key="invoice-7")

    report = dead_letter_requeue(letter_ids=[letter.pk], user=operator, now=now)

    assert report.done == [letter.pk]
    fresh = refreshed(letter).requeued_job
    assert fresh is not None and (fresh.tenant, fresh.dedupe_key, fresh.status) == ("acme", "invoice-7", "pending")
    # The copy holds the key: the same key enqueued again finds it instead of a second job.
    again = job_enqueue(kind="test.record", tenant="acme", dedupe_key="invoice-7", now=now)
    assert (again.created, again.job.pk) == (False, fresh.pk)


def test_dead_letter_requeue__a_job_letter_whose_dedupe_key_a_live_job_holds_is_skipped(
    make_job_letter: Callable[..., DeadLetter], operator: User, now: datetime
) -> None:
    letter = make_job_letter(tenant="acme")
    BackgroundJob.objects.filter(dead_letter=letter).update(dedupe_key="invoice-7")
    live = job_enqueue(kind="test.record", tenant="acme", dedupe_key="invoice-7", now=now).job

    report = dead_letter_requeue(letter_ids=[letter.pk], user=operator, now=now)

    assert report.message(verb="Requeued", singular="dead letter", plural="dead letters") == (
        f"Requeued 0 dead letters. Skipped 1: live job {live.pk} (pending) of tenant 'acme' holds its dedupe key "
        "'invoice-7': requeue the letter once that job has finished, or resolve it."
    )
    assert refreshed(letter).resolution == ""
    assert list(BackgroundJob.objects.filter(status="pending").values_list("pk", flat=True)) == [live.pk]


def test_dead_letter_requeue__twice_requeues_once(
    make_job_letter: Callable[..., DeadLetter], operator: User, now: datetime
) -> None:
    letter = make_job_letter()
    dead_letter_requeue(letter_ids=[letter.pk], user=operator, now=now)

    again = dead_letter_requeue(letter_ids=[letter.pk], user=operator, now=now)

    assert (again.done, dict(again.skipped)) == ([], {"already requeued": [letter.pk]})  # never "resolved"
    assert BackgroundJob.objects.filter(status="pending").count() == 1


def test_dead_letter_requeue__a_run_letter_runs_its_function_again_inline_when_dispatch_is_off(
    make_run_letter: Callable[..., DeadLetter], operator: User, now: datetime
) -> None:
    letter = make_run_letter()

    report = dead_letter_requeue(letter_ids=[letter.pk], user=operator, now=now)

    assert report.done == [letter.pk]
    letter = refreshed(letter)
    assert (letter.resolution, letter.resolved_by, letter.requeued_job) == ("requeued", operator, None)
    assert letter.requeued_dispatch_key.startswith("cron:counter:2026-03-14T14:05:manual-")
    window = DispatchWindow.objects.get(dispatch_key=letter.requeued_dispatch_key)
    assert (window.job, window.mode, window.source, window.correlation_id) == ("counter", "inline", "manual", "tick-7")
    # The function ran once more, for the original window, with the original params.
    cron_run = CronRun.objects.get()
    assert (cron_run.dispatch_key, cron_run.params) == (letter.requeued_dispatch_key, {"tenant": "acme"})
    rerun = FunctionRun.objects.get(dispatch_key=letter.requeued_dispatch_key)
    assert (rerun.function_id, rerun.status, rerun.scope) == ("cron-counter", "succeeded", "acme")
    # The re-run retried a failed window: the SLO report does not call it a duplicate.
    duplicates = slo_report_build(since=now - timedelta(days=1), now=now).as_json()["metrics"]["duplicateRuns"]
    assert (duplicates["value"], duplicates["pass"]) == (0, True)


RERUN_SECONDS = 6.0
_clock: list[Any] = []  # the test's frozen clock, which each slow re-run moves on


def slow_count_run(ctx: CronContext) -> dict[str, Any]:
    """The `counter` job, taking RERUN_SECONDS of the frozen clock."""
    _clock[0].tick(RERUN_SECONDS)
    return count_run(ctx)


def test_dead_letter_requeue__stops_starting_re_runs_once_the_requests_time_is_spent(
    make_run_letter: Callable[..., DeadLetter], operator: User, now: datetime, settings: Any
) -> None:
    settings.INLINE_TIME_BUDGET_SECONDS = 10.0
    settings.CRON_JOBS = [
        {**entry, "callable": f"{__name__}.slow_count_run"} if entry["name"] == "counter" else entry
        for entry in settings.CRON_JOBS
    ]
    letters = [make_run_letter() for _ in range(4)]

    with freeze_time(now) as frozen:
        _clock[:] = [frozen]
        report = dead_letter_requeue(letter_ids=[letter.pk for letter in letters], user=operator, now=now)

    # 0 s and 6 s into the request: started; at 12 s the 10 s were spent: the rest wait for the next click.
    assert report.done == [letters[0].pk, letters[1].pk]
    assert dict(report.skipped) == {OUT_OF_TIME: [letters[2].pk, letters[3].pk]}
    assert CronRun.objects.count() == 2
    assert [refreshed(letter).resolved_at for letter in letters[2:]] == [None, None]  # still open


def test_dead_letter_requeue__a_run_letter_is_republished_under_a_manual_key(
    make_run_letter: Callable[..., DeadLetter], operator: User, now: datetime, event_api: EventAPI
) -> None:
    letter = make_run_letter()

    report = dead_letter_requeue(letter_ids=[letter.pk], user=operator, now=now)

    assert report.done == [letter.pk]
    key = refreshed(letter).requeued_dispatch_key
    assert event_api.event_ids() == [f"cron/counter.requested:{key}"]
    event = event_api.events[0]
    assert event["data"]["dispatchKey"] == key
    assert event["data"]["source"] == "manual"
    assert event["data"]["dispatchWindowStart"] == "2026-03-14T14:05:00.000Z"
    assert event["data"]["params"] == {"tenant": "acme"}
    window = DispatchWindow.objects.get(dispatch_key=key)
    assert (window.mode, window.status, window.event_ids) == ("dispatch", "enqueued", [f"cron/counter.requested:{key}"])


def test_dead_letter_requeue__a_failed_publish_leaves_the_letter_open_and_stops_the_batch(
    make_run_letter: Callable[..., DeadLetter],
    make_job_letter: Callable[..., DeadLetter],
    operator: User,
    now: datetime,
    event_api: EventAPI,
) -> None:
    first, second = make_run_letter(), make_run_letter()
    job_letter = make_job_letter()
    event_api.behave("unauthorized")

    report = dead_letter_requeue(letter_ids=[first.pk, second.pk, job_letter.pk], user=operator, now=now)

    assert report.done == [job_letter.pk]  # Job letters need no publish: they still go ahead.
    (failed_reason,) = [reason for reason in report.skipped if reason.startswith("dispatch failed: ")]
    assert dict(report.skipped) == {
        failed_reason: [first.pk],
        "not attempted: an earlier publish in this batch failed": [second.pk],
    }
    for letter in (first, second):
        letter = refreshed(letter)
        assert (letter.resolution, letter.resolved_at, letter.resolved_by, letter.requeued_dispatch_key) == (
            "",
            None,
            None,
            "",
        )
    assert event_api.requests == 1
    assert DispatchWindow.objects.get().status == "dispatch_failed"


def test_dead_letter_requeue__a_crashing_rerun_leaves_the_letter_open(
    make_run_letter: Callable[..., DeadLetter], operator: User, now: datetime
) -> None:
    letter = make_run_letter("cron-crash")

    report = dead_letter_requeue(letter_ids=[letter.pk], user=operator, now=now)

    (reason,) = report.skipped
    assert refreshed(letter).resolution == ""
    # The re-run's own failure is a dead letter of its own, under its manual key: the reason names it.
    fresh = DeadLetter.objects.get(kind="cron-crash", dispatch_key__contains=":manual-")
    assert reason == (
        "the re-run failed: inline run crashed: cron-crash: RuntimeError: the crash cron job always crashes; its "
        f"failure is a new unresolved dead letter, #{fresh.pk} ({fresh.dispatch_key})"
    )


@pytest.mark.parametrize(
    ("function_id", "payload", "reason"),
    [
        ("cron-retired", "event", "function 'cron-retired' is no longer registered"),
        ("cron-counter", None, "its payload has no event to re-publish"),
        ("cron-counter", {"event": "cron/counter.requested"}, "its payload has no event data to re-publish"),
        (
            "cron-counter",
            {"event": "cron/counter.requested", "data": {}},
            "its payload has no valid dispatchWindowStart",
        ),
    ],
)
def test_dead_letter_requeue__a_run_letter_that_cannot_be_dispatched_is_skipped_with_the_reason(
    make_run_letter: Callable[..., DeadLetter],
    operator: User,
    now: datetime,
    function_id: str,
    payload: Any,
    reason: str,
) -> None:
    letter = make_run_letter(function_id, payload=payload)

    report = dead_letter_requeue(letter_ids=[letter.pk], user=operator, now=now)

    assert dict(report.skipped) == {reason: [letter.pk]}
    assert refreshed(letter).resolution == ""
    assert not DispatchWindow.objects.exists()


def test_dead_letter_requeue__works_on_hundreds_of_letters(
    make_job_letter: Callable[..., DeadLetter], operator: User, now: datetime
) -> None:
    letters = [make_job_letter(payload={"n": n}) for n in range(250)]

    report = dead_letter_requeue(letter_ids=[letter.pk for letter in letters], user=operator, now=now)

    assert len(report.done) == 250 and not report.skipped
    assert DeadLetter.objects.filter(resolution="requeued", requeued_job__status="pending").count() == 250
    assert sorted(BackgroundJob.objects.filter(status="pending").values_list("payload__n", flat=True)) == list(
        range(250)
    )


def test_dead_letter_resolve__resolves_the_open_letters_with_the_note_and_skips_the_others(
    make_job_letter: Callable[..., DeadLetter],
    make_run_letter: Callable[..., DeadLetter],
    operator: User,
    now: datetime,
) -> None:
    job_letter, run_letter = make_job_letter(), make_run_letter()
    requeued = make_job_letter()
    dead_letter_requeue(letter_ids=[requeued.pk], user=operator, now=now)
    later = now + timedelta(hours=1)

    report = dead_letter_resolve(
        letter_ids=[job_letter.pk, run_letter.pk, requeued.pk, 999_999],
        user=operator,
        note="  upstream outage, replayed by hand  ",
        now=later,
    )

    assert report.message(verb="Resolved", singular="dead letter", plural="dead letters") == (
        "Resolved 2 dead letters. Skipped 2: 1 already requeued; 1 deleted meanwhile."
    )
    for letter in (job_letter, run_letter):
        letter = refreshed(letter)
        assert (letter.resolution, letter.resolved_at, letter.resolved_by, letter.note) == (
            "resolved",
            later,
            operator,
            "upstream outage, replayed by hand",
        )
    assert (refreshed(requeued).resolution, refreshed(requeued).note) == ("requeued", "")
    assert not DispatchWindow.objects.exists()  # Resolving runs nothing.


@pytest.mark.parametrize(
    ("note", "error"),
    [
        ("   ", "a note is required: say why these failures need no requeue"),
        ("x" * 2001, "the note is 2001 characters long; at most 2000 are kept"),
    ],
)
def test_dead_letter_resolve__refuses_an_empty_or_overlong_note(
    make_job_letter: Callable[..., DeadLetter], operator: User, now: datetime, note: str, error: str
) -> None:
    letter = make_job_letter()

    with pytest.raises(ValueError) as raised:
        dead_letter_resolve(letter_ids=[letter.pk], user=operator, note=note, now=now)

    assert str(raised.value) == error
    assert refreshed(letter).resolution == ""
