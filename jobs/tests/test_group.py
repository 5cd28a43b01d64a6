"""Group commit: many jobs per transaction, each under its own savepoint, one commit per group.

A failing job in the middle of a group loses its writes and keeps its neighbours';
a runner killed mid-group loses no job and completes none without its writes; a
group whose success marks do not all match (a lease lost while it ran), or whose
COMMIT fails (a deferred constraint), is rolled back and run again one job at a time.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.db.models import Max
from django.test.utils import CaptureQueriesContext

from jobs.maintenance import recover_expired_leases
from jobs.models import BackgroundJob
from jobs.runner import jobs_run
from runs.models import DeadLetter
from testsupport import drainer, handlers, procs
from testsupport.models import HandlerNote, HandlerRun

pytestmark = pytest.mark.django_db(transaction=True)

Job = Callable[..., BackgroundJob]
Reap = Callable[[subprocess.Popen[str]], subprocess.Popen[str]]


def at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def success_marks(queries: CaptureQueriesContext) -> list[str]:
    return [query["sql"] for query in queries.captured_queries if "SET status = 'succeeded'" in query["sql"]]


def test_jobs_run__a_failing_job_mid_group_loses_its_writes_and_its_neighbours_keep_theirs(
    make_job: Job, now: datetime, settings: object
) -> None:
    settings.JOBS_GROUP_MAX_MS = 600_000  # type: ignore[attr-defined]
    before = make_job(priority=3)
    failing = make_job(kind="test.write_then_fail", priority=2, max_attempts=2)
    after = make_job(priority=1)

    with CaptureQueriesContext(connection) as queries:
        summary = jobs_run(budget_seconds=30, clock=at(now))

    assert (summary.claimed, summary.succeeded, summary.retried) == (3, 2, 1)
    assert sorted(HandlerRun.objects.values_list("job_id", flat=True)) == sorted([before.pk, after.pk])
    failing.refresh_from_db()
    assert (failing.status, failing.attempts) == ("pending", 1)
    assert failing.last_error == "ValueError: test.write_then_fail fails attempt 1 after writing"
    for job in (before, after):
        job.refresh_from_db()
        assert (job.status, job.finished_at) == ("succeeded", now)
    # Both successes were marked by one statement, in the group's one transaction.
    [mark] = success_marks(queries)
    assert "jsonb_to_recordset(" in mark


def test_jobs_run__a_group_whose_lease_was_lost_is_run_again_one_job_at_a_time(now: datetime, reap: Reap) -> None:
    quick = BackgroundJob.objects.create(kind="test.record", priority=2, run_after=now, created_at=now)
    gate = BackgroundJob.objects.create(kind="test.gate", priority=1, run_after=now, created_at=now)
    runner = reap(drainer.start(at=now, JOBS_GROUP_MAX_MS="600000"))  # the whole batch in one group
    assert runner.stdout is not None
    procs.read_until(runner.stdout, f"STARTED job={gate.pk} ")

    # `quick` ran and waits in the open group for its commit; its lease runs out meanwhile
    # (time passed in, not waited for) and maintenance takes it back.
    quick.refresh_from_db()
    assert quick.started_at is not None and quick.lease_expires_at is not None
    recover_expired_leases(now=quick.lease_expires_at + timedelta(microseconds=1))
    quick.refresh_from_db()
    assert (quick.status, quick.attempts) == ("pending", 1)

    output, _ = runner.communicate("go\ngo\n", timeout=60)  # the gate's handler runs twice: once in the group

    assert runner.returncode == 0, output
    assert "running its jobs again one at a time" in output
    summary = drainer.summary_of(output)
    assert (summary["claimed"], summary["succeeded"], summary["leaseLost"]) == (2, 1, 1)
    # The gate's writes committed once (its second run); the job taken back wrote nothing and waits its turn.
    assert list(HandlerRun.objects.values_list("job_id", "attempt")) == [(gate.pk, 1)]
    gate.refresh_from_db()
    assert (gate.status, gate.attempts) == ("succeeded", 1)
    quick.refresh_from_db()
    assert (quick.status, quick.attempts, quick.locked_by) == ("pending", 1, "")


def test_jobs_run__a_runner_killed_mid_group_loses_no_job_and_completes_none_without_its_writes(
    now: datetime, reap: Reap
) -> None:
    done_first = [
        BackgroundJob.objects.create(kind="test.crunch", priority=5, run_after=now, created_at=now) for _ in range(4)
    ]
    stuck = BackgroundJob.objects.create(
        kind="test.block", payload={"seconds": 3600}, priority=4, run_after=now, created_at=now
    )
    never_started = [BackgroundJob.objects.create(kind="test.record", run_after=now, created_at=now) for _ in range(3)]
    name = procs.app_name()
    runner = reap(drainer.start(at=now, JOBS_GROUP_MAX_MS="600000", PGAPPNAME=name))  # the whole batch in one group
    assert runner.stdout is not None
    procs.read_until(runner.stdout, f"STARTED job={stuck.pk} ")  # four handlers done, their group still open

    runner.send_signal(signal.SIGKILL)
    runner.communicate(timeout=60)
    procs.wait_until_disconnected(name)

    # Nothing of the group committed: no writes, no success; every job is still claimed or was never started.
    assert not HandlerRun.objects.exists()
    assert not BackgroundJob.objects.filter(status="succeeded").exists()
    started = BackgroundJob.objects.filter(pk__in=[job.pk for job in [*done_first, stuck]])
    assert {(job.status, job.attempts, job.started_at is not None) for job in started} == {("running", 1, True)}
    latest = BackgroundJob.objects.filter(status="running").aggregate(latest=Max("lease_expires_at"))["latest"]
    # Past every lease (time passed in), maintenance gives the jobs back: the started ones spend their attempt.
    after_leases = latest + timedelta(seconds=1)
    assert recover_expired_leases(now=after_leases) == {"requeued": 5, "released": 3, "dead": 0}
    BackgroundJob.objects.filter(pk=stuck.pk).update(payload={"seconds": 0})

    summary = jobs_run(budget_seconds=30, clock=at(after_leases))

    assert (summary.claimed, summary.succeeded) == (8, 8)
    # Every job completed once, with its writes: the started ones in their second attempt.
    expected = [(job.pk, 2) for job in [*done_first, stuck]] + [(job.pk, 1) for job in never_started]
    assert sorted(HandlerRun.objects.values_list("job_id", "attempt")) == sorted(expected)
    assert BackgroundJob.objects.filter(status="succeeded").count() == 8


def test_jobs_run__a_group_keeps_each_jobs_return_value(make_job: Job, now: datetime, settings: object) -> None:
    settings.JOBS_GROUP_MAX_MS = 600_000  # type: ignore[attr-defined]
    value = {"total": 3, "items": ["a", None, 1.5], "nested": {"ok": True}}
    returning = make_job(kind="test.returns", payload={"value": value}, priority=2)
    silent = make_job(kind="test.returns", priority=1)

    with CaptureQueriesContext(connection) as queries:
        summary = jobs_run(budget_seconds=30, clock=at(now))

    assert (summary.claimed, summary.succeeded) == (2, 2)
    assert len(success_marks(queries)) == 1  # one group, one statement
    returning.refresh_from_db()
    silent.refresh_from_db()
    assert (returning.status, returning.return_value) == ("succeeded", value)
    assert (silent.status, silent.return_value) == ("succeeded", None)
    assert BackgroundJob.objects.filter(pk=silent.pk, return_value__isnull=True).exists()  # SQL NULL, not JSON null


@pytest.mark.parametrize("group_max_jobs", [50, 1], ids=["grouped", "one-per-transaction"])
def test_jobs_run__a_job_whose_writes_fail_at_commit_fails_alone_and_its_neighbours_succeed(
    make_job: Job, now: datetime, settings: object, group_max_jobs: int
) -> None:
    settings.JOBS_GROUP_MAX_MS = 600_000  # type: ignore[attr-defined]
    settings.JOBS_GROUP_MAX_JOBS = group_max_jobs  # type: ignore[attr-defined]
    before = make_job(priority=3, max_attempts=1)  # one attempt each: an attempt spent on them would bury them
    guilty = make_job(kind="test.dangling_reference", priority=2, max_attempts=2)
    after = make_job(priority=1, max_attempts=1)

    summary = jobs_run(budget_seconds=30, clock=at(now))

    assert (summary.claimed, summary.succeeded, summary.retried, summary.dead) == (3, 2, 1, 0)
    # The neighbours succeeded in their one attempt, their writes committed once; the guilty job's are gone.
    assert sorted(HandlerRun.objects.values_list("job_id", "attempt")) == sorted([(before.pk, 1), (after.pk, 1)])
    assert not HandlerNote.objects.exists()
    for job in (before, after):
        job.refresh_from_db()
        assert (job.status, job.attempts, job.finished_at) == ("succeeded", 1, now)
    # The COMMIT's refusal is the guilty job's failure: retried on its backoff, the error kept once.
    guilty.refresh_from_db()
    assert (guilty.status, guilty.attempts, guilty.locked_by, guilty.started_at) == ("pending", 1, "", now)
    assert guilty.last_error.startswith("IntegrityError: ")
    assert "violates foreign key constraint" in guilty.last_error
    assert [error["exception_class_path"] for error in guilty.errors] == ["django.db.utils.IntegrityError"]
    assert not DeadLetter.objects.exists()


def test_jobs_run__a_job_whose_last_attempt_fails_at_commit_is_dead_lettered_with_the_error(
    make_job: Job, now: datetime, settings: object
) -> None:
    settings.JOBS_GROUP_MAX_MS = 600_000  # type: ignore[attr-defined]
    neighbour = make_job(priority=2)
    guilty = make_job(kind="test.dangling_reference", priority=1, max_attempts=1)

    summary = jobs_run(budget_seconds=30, clock=at(now))

    assert (summary.claimed, summary.succeeded, summary.dead) == (2, 1, 1)
    neighbour.refresh_from_db()
    assert neighbour.status == "succeeded"
    guilty.refresh_from_db()
    assert (guilty.status, guilty.attempts) == ("dead", 1)
    [letter] = DeadLetter.objects.all()
    assert (letter.job_id, letter.error) == (guilty.pk, guilty.last_error)
    assert letter.error.startswith("IntegrityError: ")


def test_jobs_run__a_job_run_again_after_its_group_was_rolled_back_keeps_nothing_of_the_lost_attempt(
    make_job: Job, now: datetime, settings: object
) -> None:
    settings.JOBS_GROUP_MAX_MS = 600_000  # type: ignore[attr-defined]
    doomed = make_job(kind="test.fail", priority=2, max_attempts=1)  # buried in the group, then rolled back
    make_job(kind="test.dangling_reference", priority=1, max_attempts=2)  # its writes fail the group's COMMIT

    summary = jobs_run(budget_seconds=30, clock=at(now))

    assert (summary.claimed, summary.retried, summary.dead) == (2, 1, 1)
    doomed.refresh_from_db()
    assert (doomed.status, doomed.attempts) == ("dead", 1)
    # Its one attempt failed once as far as the row is concerned: the rolled-back burial left no error behind.
    errors = [(error["attempt"], error["exception_class_path"]) for error in doomed.errors]
    assert errors == [(1, "builtins.ValueError")]
    [letter] = DeadLetter.objects.filter(job=doomed)
    assert letter.error == "ValueError: test.fail failed attempt 1"


@pytest.mark.parametrize(
    "steps",
    [["on_commit", "fail"], ["on_commit", "write", "fail"], ["write", "on_commit", "fail"]],
    ids=["before-any-statement", "before-its-write", "after-its-write"],
)
def test_jobs_run__a_failing_jobs_commit_callbacks_never_run_and_its_neighbours_run_once_after_the_commit(
    make_job: Job, now: datetime, settings: object, steps: list[str]
) -> None:
    settings.JOBS_GROUP_MAX_MS = 600_000  # type: ignore[attr-defined]
    handlers.committed_callbacks.clear()
    before = make_job(kind="test.steps", payload={"steps": ["on_commit", "write"]}, priority=3)
    failing = make_job(kind="test.steps", payload={"steps": steps}, priority=2, max_attempts=2)
    after = make_job(kind="test.steps", payload={"steps": ["on_commit"]}, priority=1)

    summary = jobs_run(budget_seconds=30, clock=at(now))

    assert (summary.claimed, summary.succeeded, summary.retried) == (3, 2, 1)
    failing.refresh_from_db()
    assert (failing.status, failing.last_error) == ("pending", "ValueError: test.steps fails attempt 1")
    # The neighbours' callbacks ran once each, once their success had committed; the failing job's never.
    assert handlers.committed_callbacks == [(before.pk, "succeeded"), (after.pk, "succeeded")]


def test_jobs_run__a_rolled_back_group_run_again_stops_at_the_budget_and_gives_the_rest_back(
    make_job: Job, now: datetime, settings: object, caplog: pytest.LogCaptureFixture
) -> None:
    settings.JOBS_GROUP_MAX_MS = 600_000  # type: ignore[attr-defined]
    first = make_job(priority=4, max_attempts=1)
    make_job(kind="test.dangling_reference", priority=3, max_attempts=2)  # its writes fail the group's COMMIT
    slow = make_job(kind="test.block", payload={"seconds": 0.8}, priority=2, max_attempts=1)
    last = make_job(priority=1, max_attempts=1)

    with caplog.at_level("INFO", logger="jobs.group"):
        summary = jobs_run(budget_seconds=1.5, clock=at(now))

    [again] = [record for record in caplog.records if "running its jobs again" in record.getMessage()]
    assert last.pk in again.jobIds  # type: ignore[attr-defined]  # it ran in the group, which was rolled back
    # Run again in turn until the slow job had spent the budget: the last one went back to the queue, its
    # attempt given back, without running again.
    assert (summary.claimed, summary.succeeded, summary.retried, summary.budget_exhausted) == (3, 2, 1, True)
    for job in (first, slow):
        job.refresh_from_db()
        assert (job.status, job.attempts) == ("succeeded", 1)
    last.refresh_from_db()
    assert (last.status, last.attempts, last.locked_by, last.started_at) == ("pending", 0, "", None)
    assert not HandlerRun.objects.filter(job_id=last.pk).exists()
