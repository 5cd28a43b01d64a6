from __future__ import annotations

import signal
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from django.test import override_settings

from jobs.backoff import retry_delay
from jobs.claim import claim_batch
from jobs.context import RunOrigin
from jobs.lease import LeaseConnection
from jobs.maintenance import recover_expired_leases
from jobs.models import BackgroundJob
from jobs.runner import jobs_run
from runs.models import DeadLetter
from testsupport import procs
from testsupport.models import HandlerRun
from testsupport.single_job import run_job

pytestmark = pytest.mark.django_db

Job = Callable[..., BackgroundJob]


def at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def test_jobs_run__runs_due_jobs_and_reports(make_job: Job, now: datetime) -> None:
    jobs = [make_job() for _ in range(3)]
    make_job(run_after=now + timedelta(minutes=5))  # not due yet

    summary = jobs_run(budget_seconds=30, clock=at(now))

    assert summary.as_json() | {"durationMs": 0} == {
        "claimed": 3,
        "succeeded": 3,
        "retried": 0,
        "dead": 0,
        "leaseLost": 0,
        "durationMs": 0,
        "budgetExhausted": False,
        "remainingBacklog": 0,
    }
    assert sorted(HandlerRun.objects.values_list("job_id", flat=True)) == [job.pk for job in jobs]
    for job in jobs:
        job.refresh_from_db()
        assert (job.status, job.attempts, job.started_at, job.finished_at, job.lease_expires_at) == (
            "succeeded",
            1,
            now,
            now,
            None,
        )


def test_jobs_run__priority_then_age_order(make_job: Job, now: datetime) -> None:
    low = make_job(priority=-5)
    old = make_job(run_after=now - timedelta(minutes=1))
    high = make_job(priority=10)

    jobs_run(budget_seconds=30, batch_size=1, clock=at(now))

    assert list(HandlerRun.objects.order_by("id").values_list("job_id", flat=True)) == [high.pk, old.pk, low.pk]


def test_jobs_run__a_failing_job_is_retried_on_the_deterministic_schedule_then_dead(
    make_job: Job, now: datetime
) -> None:
    failing = make_job(kind="test.fail", max_attempts=3)
    others = [make_job() for _ in range(4)]

    first = jobs_run(budget_seconds=30, clock=at(now))

    assert (first.claimed, first.succeeded, first.retried, first.dead) == (5, 4, 1, 0)
    assert HandlerRun.objects.count() == len(others)
    moment = now
    for attempt in (1, 2):
        failing.refresh_from_db()
        delay = retry_delay(job_id=failing.pk, attempt=attempt, base_seconds=5.0, max_seconds=3600.0)
        base = timedelta(seconds=5 * 2 ** (attempt - 1))
        assert base <= delay < base * 1.25
        assert (failing.status, failing.attempts) == ("pending", attempt)
        assert failing.run_after == moment + delay
        assert failing.last_error == f"ValueError: test.fail failed attempt {attempt}"
        # Not due a moment before its run_after; due exactly at it.
        assert jobs_run(budget_seconds=30, clock=at(failing.run_after - timedelta(milliseconds=1))).claimed == 0
        moment = failing.run_after
        summary = jobs_run(budget_seconds=30, clock=at(moment))
    assert (summary.claimed, summary.dead) == (1, 1)
    failing.refresh_from_db()
    assert (failing.status, failing.attempts, failing.finished_at) == ("dead", 3, moment)
    letter = DeadLetter.objects.get()
    assert (letter.source, letter.job_id, letter.kind, letter.attempts, letter.scope) == (
        "job",
        failing.pk,
        "test.fail",
        3,
        "global",
    )
    assert letter.error == "ValueError: test.fail failed attempt 3"
    assert letter.resolved_at is None


def test_jobs_run__dead_letter_carries_the_origin(make_job: Job, now: datetime) -> None:
    make_job(kind="test.fail", max_attempts=1, tenant="acme", payload={"order": 7})
    origin = RunOrigin(correlation_id="corr-1", dispatch_key="cron:background-jobs:2026-03-14T15:09", run_id="r1")

    jobs_run(budget_seconds=30, origin=origin, clock=at(now))

    letter = DeadLetter.objects.get()
    assert (letter.correlation_id, letter.dispatch_key, letter.run_id) == (
        "corr-1",
        "cron:background-jobs:2026-03-14T15:09",
        "r1",
    )
    assert (letter.scope, letter.payload) == ("acme", {"order": 7})


def test_jobs_run__a_handler_failure_rolls_back_its_writes(make_job: Job, now: datetime) -> None:
    make_job(kind="test.record", payload={"failUntil": 1}, max_attempts=2)

    jobs_run(budget_seconds=30, clock=at(now))

    assert not HandlerRun.objects.exists()


def test_jobs_run__unregistered_kind_fails_the_job_not_the_batch(make_job: Job, now: datetime) -> None:
    orphan = make_job(kind="removed.kind", max_attempts=1)
    make_job()

    summary = jobs_run(budget_seconds=30, clock=at(now))

    orphan.refresh_from_db()
    assert (summary.succeeded, summary.dead) == (1, 1)
    assert "no handler for kind 'removed.kind'" in orphan.last_error


def test_jobs_run__zero_budget_claims_nothing(make_job: Job, now: datetime) -> None:
    make_job()

    summary = jobs_run(budget_seconds=0, clock=at(now))

    assert (summary.claimed, summary.budget_exhausted, summary.remaining_backlog) == (0, True, 1)


def test_claim_batch__claims_under_a_lease_and_skips_claimed_jobs(make_job: Job, now: datetime) -> None:
    jobs = [make_job() for _ in range(3)]

    first = claim_batch(now=now, limit=2, worker="w1")
    second = claim_batch(now=now, limit=5, worker="w2")

    assert [job.pk for job in first] == [jobs[0].pk, jobs[1].pk]
    assert [job.pk for job in second] == [jobs[2].pk]
    claimed = BackgroundJob.objects.get(pk=jobs[0].pk)
    assert (claimed.status, claimed.attempts, claimed.locked_by) == ("running", 1, "w1")
    assert claimed.lease_expires_at == now + timedelta(seconds=60)
    assert claimed.started_at is None  # stamped when its handler starts, not at the claim


def test_jobs_run__a_job_whose_lease_was_lost_commits_nothing(make_job: Job, now: datetime) -> None:
    job = make_job()
    [claimed] = claim_batch(now=now, limit=1, worker="w1")
    # The lease expires, maintenance gives the unstarted job back (attempt unspent) and another
    # worker claims it: the same attempt number, under another worker's name.
    recover_expired_leases(now=now + timedelta(seconds=61))
    claim_batch(now=now + timedelta(seconds=61), limit=1, worker="w2")

    outcome = run_job(claimed, clock=at(now), origin=RunOrigin())

    assert outcome == "lease_lost"
    assert not HandlerRun.objects.exists()
    job.refresh_from_db()
    assert (job.status, job.attempts, job.locked_by, job.started_at) == ("running", 1, "w2", None)


@pytest.mark.django_db(transaction=True)
def test_jobs_run__two_runner_processes_never_run_a_job_twice(make_job: Job, now: datetime) -> None:
    total = 400
    BackgroundJob.objects.bulk_create(
        [BackgroundJob(kind="test.record", run_after=now, created_at=now) for _ in range(total)]
    )

    runners = [procs.manage("run_jobs", "--budget", "30", "--batch-size", "7") for _ in range(2)]
    outputs = [runner.communicate(timeout=180) for runner in runners]

    assert [runner.returncode for runner in runners] == [0, 0], outputs
    runs = list(HandlerRun.objects.values_list("job_id", "worker_pid"))
    assert len(runs) == total
    assert len({job_id for job_id, _ in runs}) == total
    assert BackgroundJob.objects.filter(status="succeeded").count() == total
    assert BackgroundJob.objects.filter(attempts=1).count() == total


@pytest.mark.django_db(transaction=True)
def test_jobs_run__a_killed_workers_job_is_recovered_by_maintenance_and_completes(make_job: Job) -> None:
    from django.utils import timezone

    job = make_job(kind="test.block", payload={"seconds": 3600}, run_after=timezone.now())
    name = procs.app_name()
    runner = procs.manage("run_jobs", "--budget", "30", env=procs.child_env(PGAPPNAME=name))
    assert runner.stdout is not None
    procs.read_until(runner.stdout, "STARTED")
    runner.send_signal(signal.SIGKILL)
    runner.communicate(timeout=30)
    procs.wait_until_disconnected(name)

    job.refresh_from_db()
    assert (job.status, job.attempts) == ("running", 1)
    assert not HandlerRun.objects.exists()  # the killed worker's transaction was rolled back
    assert job.lease_expires_at is not None
    # Before the lease expires, maintenance leaves the job alone.
    assert recover_expired_leases(now=job.lease_expires_at - timedelta(seconds=1)) == {
        "requeued": 0,
        "released": 0,
        "dead": 0,
    }
    after_lease = job.lease_expires_at + timedelta(seconds=1)
    assert recover_expired_leases(now=after_lease) == {"requeued": 1, "released": 0, "dead": 0}
    BackgroundJob.objects.filter(pk=job.pk).update(payload={"seconds": 0})

    summary = jobs_run(budget_seconds=30, clock=at(after_lease))

    job.refresh_from_db()
    assert (summary.succeeded, job.status, job.attempts) == (1, "succeeded", 2)
    assert list(HandlerRun.objects.values_list("job_id", "attempt")) == [(job.pk, 2)]


def test_recover_expired_leases__gives_back_a_job_whose_handler_never_started_without_spending_its_attempt(
    make_job: Job, now: datetime
) -> None:
    job = make_job(max_attempts=1)
    claim_batch(now=now, limit=1, worker="w1")  # its worker went away before starting it

    result = recover_expired_leases(now=now + timedelta(minutes=2))

    job.refresh_from_db()
    assert result == {"requeued": 0, "released": 1, "dead": 0}
    assert (job.status, job.attempts, job.lease_expires_at, job.locked_by) == ("pending", 0, None, "")
    assert not DeadLetter.objects.exists()
    assert jobs_run(budget_seconds=30, clock=at(now + timedelta(minutes=2))).succeeded == 1


def test_recover_expired_leases__buries_a_started_job_out_of_attempts(make_job: Job, now: datetime) -> None:
    job = make_job(max_attempts=1)
    [claimed] = claim_batch(now=now, limit=1, worker="w1")
    assert LeaseConnection(separate=False).start(claimed, now=now)  # its handler started, then the worker died

    result = recover_expired_leases(now=now + timedelta(minutes=2))

    job.refresh_from_db()
    assert result == {"requeued": 0, "released": 0, "dead": 1}
    assert job.status == "dead"
    letter = DeadLetter.objects.get()
    assert letter.job_id == job.pk
    assert letter.error == job.last_error == "LeaseExpired: lease expired on attempt 1 of 1: the worker stopped"
    # The lost attempt's record: what happened, to which worker, and when.
    [error] = job.errors
    assert (error["attempt"], error["exception_class_path"]) == (1, "jobs.exceptions.LeaseExpired")
    assert error["traceback"] == (
        "jobs.exceptions.LeaseExpired: lease expired on attempt 1 of 1: the worker stopped\n"
        "worker w1; started at 2026-03-14T15:09:26.500+00:00; lease expired at 2026-03-14T15:10:26.500+00:00; "
        "taken back by lease recovery at 2026-03-14T15:11:26.500+00:00\n"
    )


@override_settings(JOBS_LEASE_SECONDS=30)
def test_heartbeat__extends_the_lease_of_the_current_claim(make_job: Job, now: datetime) -> None:
    job = make_job(kind="test.heartbeat")
    [claimed] = claim_batch(now=now, limit=1, worker="w1")

    outcome = run_job(claimed, clock=at(now + timedelta(seconds=20)), origin=RunOrigin())

    assert outcome == "succeeded"
    assert HandlerRun.objects.filter(job_id=job.pk).exists()


def test_heartbeat__reports_a_lost_lease(make_job: Job, now: datetime) -> None:
    make_job(kind="test.heartbeat")
    [claimed] = claim_batch(now=now, limit=1, worker="w1")
    recover_expired_leases(now=now + timedelta(seconds=61))
    claim_batch(now=now + timedelta(seconds=61), limit=1, worker="w2")

    outcome = run_job(claimed, clock=at(now + timedelta(seconds=62)), origin=RunOrigin())

    assert outcome == "lease_lost"
    assert not HandlerRun.objects.exists()


def test_jobs_run__max_jobs_stops_early_and_says_so(make_job: Job, now: datetime) -> None:
    for _ in range(5):
        make_job()

    summary = jobs_run(budget_seconds=30, max_jobs=3, batch_size=2, clock=at(now))

    assert (summary.claimed, summary.budget_exhausted, summary.remaining_backlog) == (3, True, 2)
    assert BackgroundJob.objects.filter(status="running").count() == 0


@pytest.mark.django_db(transaction=True)
def test_jobs_run__concurrent_threads_run_every_job_once(now: datetime) -> None:
    BackgroundJob.objects.bulk_create(
        [BackgroundJob(kind="test.record", run_after=now, created_at=now) for _ in range(120)]
    )

    summary = jobs_run(budget_seconds=120, batch_size=7, concurrency=3, clock=at(now))

    assert (summary.claimed, summary.succeeded, summary.remaining_backlog) == (120, 120, 0)
    job_ids = list(HandlerRun.objects.values_list("job_id", flat=True))
    assert len(job_ids) == len(set(job_ids)) == 120


@pytest.mark.django_db(transaction=True)
def test_jobs_run__concurrent_threads_share_max_jobs_exactly(now: datetime) -> None:
    BackgroundJob.objects.bulk_create(
        [BackgroundJob(kind="test.record", run_after=now, created_at=now) for _ in range(50)]
    )

    summary = jobs_run(budget_seconds=120, batch_size=4, max_jobs=21, concurrency=4, clock=at(now))

    assert (summary.claimed, summary.budget_exhausted, summary.remaining_backlog) == (21, True, 29)
    assert HandlerRun.objects.count() == 21
    assert BackgroundJob.objects.filter(status="running").count() == 0
