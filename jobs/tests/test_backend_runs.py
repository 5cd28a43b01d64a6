"""Tasks run by the runner, as any job: their TaskResult through every status, ordering, context, queues.

A task raising until its job dies, requeued from the admin, then succeeding: the
TaskResult the application holds follows along.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from django_tasks import TaskResultStatus
from freezegun import freeze_time

from jobs.claim import claim_batch, release
from jobs.context import RunOrigin
from jobs.models import MAX_ERRORS_KEPT, BackgroundJob
from jobs.outcome import ReturnValueTooLarge
from jobs.runner import jobs_run
from runs.models import DeadLetter
from testsupport import procs, tasks
from testsupport.models import HandlerRun
from testsupport.single_job import run_job

pytestmark = pytest.mark.django_db

WORKER = "host:1:abc"


@pytest.fixture(autouse=True)
def _enqueue_at(now: datetime) -> Iterator[None]:
    """Enqueue at `now` (the backend reads the clock itself); the runner is given its clock."""
    with freeze_time(now):
        yield


def at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def drain_until_settled(start: datetime, *, rounds: int = 8) -> datetime:
    """Run the queue at later and later instants (past every backoff) until nothing is pending; return the last."""
    moment = start
    for _ in range(rounds):
        jobs_run(budget_seconds=30, clock=at(moment))
        if not BackgroundJob.objects.filter(status="pending").exists():
            break
        moment += timedelta(hours=2)
    return moment


def test_result__follows_the_job_from_ready_through_running_to_successful(now: datetime) -> None:
    result = tasks.meaning_of_life.enqueue()
    [job] = claim_batch(now=now, limit=10, worker=WORKER)

    result.refresh()
    # Claimed, its function not started yet: started when it starts.
    assert (result.status, result.started_at, result.last_attempted_at) == (TaskResultStatus.RUNNING, None, None)
    assert (result.worker_ids, result.attempts, result.finished_at) == ([WORKER], 1, None)

    assert run_job(job, clock=at(now + timedelta(seconds=1)), origin=RunOrigin()) == "succeeded"
    result.refresh()
    assert (result.status, result.is_finished, result.return_value) == (TaskResultStatus.SUCCESSFUL, True, 42)
    assert result.started_at == result.last_attempted_at == result.finished_at == now + timedelta(seconds=1)
    assert result.errors == []
    async_to_sync(result.arefresh)()
    assert result.return_value == 42


def test_result__success_is_stored_in_the_one_update_that_marks_it(now: datetime) -> None:
    tasks.meaning_of_life.enqueue()
    [job] = claim_batch(now=now, limit=10, worker=WORKER)

    with CaptureQueriesContext(connection) as queries:
        run_job(job, clock=at(now), origin=RunOrigin())

    statements = [query["sql"] for query in queries.captured_queries if "SAVEPOINT" not in query["sql"]]
    # The lease renewed as the function starts (on this connection inside the test's transaction),
    # then one update marks the job succeeded with its return value.
    assert len(statements) == 2
    assert statements[0].startswith("UPDATE jobs_backgroundjob SET lease_expires_at = ")
    assert statements[1].startswith("UPDATE jobs_backgroundjob SET status = ") and "return_value" in statements[1]


def test_result__a_failure_is_ready_again_with_its_error_then_failed_after_the_last_attempt(now: datetime) -> None:
    result = tasks.value_error_retried.enqueue()  # five attempts, its @retry_policy says

    jobs_run(budget_seconds=30, clock=at(now))
    result.refresh()
    assert (result.status, result.attempts, len(result.errors)) == (TaskResultStatus.READY, 1, 1)
    assert result.errors[0].exception_class is ValueError
    assert result.errors[0].traceback.endswith("ValueError: This task failed due to ValueError\n")

    drain_until_settled(now + timedelta(hours=2))
    result.refresh()
    assert (result.status, result.is_finished, result.attempts) == (TaskResultStatus.FAILED, True, 5)
    assert [error.exception_class for error in result.errors] == [ValueError] * 5
    assert result.finished_at is not None
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018
    assert DeadLetter.objects.get().job == BackgroundJob.objects.get(result_id=result.id)


def test_result__keeps_the_last_errors_and_the_end_of_a_long_traceback(now: datetime) -> None:
    result = tasks.complex_exception.enqueue()
    job = BackgroundJob.objects.get()
    job.errors = [{"attempt": 0, "exception_class_path": "builtins.KeyError", "traceback": "old"}] * 12
    job.max_attempts = 1
    job.save()

    jobs_run(budget_seconds=30, clock=at(now))

    result.refresh()
    assert len(result.errors) == MAX_ERRORS_KEPT
    assert result.errors[-1].exception_class is ValueError
    assert 'ValueError(ValueError("This task failed"))' in result.errors[-1].traceback


@pytest.mark.parametrize(
    ("target", "args", "error", "message"),
    [
        (tasks.lambda_return_value, (), TypeError, "Unsupported type: <class 'function'>"),
        (tasks.sized_return_value, (70_000,), ReturnValueTooLarge, "the return value is 70,002 bytes of JSON"),
    ],
)
def test_result__a_return_value_a_row_cannot_keep_fails_the_attempt(
    now: datetime, target: Any, args: tuple[Any, ...], error: type[Exception], message: str
) -> None:
    result = target.enqueue(*args)

    jobs_run(budget_seconds=30, clock=at(now))

    result.refresh()  # Three attempts, its @retry_policy says; yet the same code would return the same value again.
    assert (result.status, result.attempts, result.errors[0].exception_class) == (TaskResultStatus.FAILED, 1, error)
    assert message in result.errors[0].traceback
    assert BackgroundJob.objects.get().return_value is None
    assert DeadLetter.objects.get().attempts == 1


def test_result__a_return_value_within_the_limit_is_kept(now: datetime, settings: Any) -> None:
    settings.JOBS_RETURN_VALUE_MAX_BYTES = 1002
    kept, refused = tasks.sized_return_value.enqueue(1000), tasks.sized_return_value.enqueue(1001)

    jobs_run(budget_seconds=30, clock=at(now))

    kept.refresh()
    refused.refresh()
    assert (kept.status, kept.return_value) == (TaskResultStatus.SUCCESSFUL, "x" * 1000)
    assert "JOBS_RETURN_VALUE_MAX_BYTES" in refused.errors[0].traceback


@pytest.mark.parametrize("target", [tasks.meaning_of_life_async, tasks.meaning_of_life])
def test_runner__runs_async_and_sync_tasks(now: datetime, target: Any) -> None:
    result = async_to_sync(target.aenqueue)()

    jobs_run(budget_seconds=30, clock=at(now))

    async_to_sync(result.arefresh)()
    assert (result.status, result.return_value) == (TaskResultStatus.SUCCESSFUL, 42)


def test_runner__claims_by_priority_then_run_after_as_the_framework_expects() -> None:
    now = timezone.now()
    hours = timedelta(hours=1)
    old = tasks.noop.using(priority=20, run_after=now - 2 * hours).enqueue()
    very_old = tasks.noop.using(priority=20, run_after=now - 10 * hours).enqueue()
    tasks.noop.using(run_after=now + 10 * hours).enqueue()
    tasks.noop.using(priority=10, run_after=now + 10 * hours).enqueue()
    future = tasks.noop.using(run_after=now + 2 * hours).enqueue()
    high = tasks.noop.using(priority=10).enqueue()
    low = tasks.noop.using(priority=2).enqueue()
    lower = tasks.noop.using(priority=-2).enqueue()

    claimed = claim_batch(now=timezone.now(), limit=100, worker=WORKER)

    assert [str(job.result_id) for job in claimed] == [r.id for r in (very_old, old, high, low, lower)]
    later = claim_batch(now=now + 3 * hours, limit=100, worker=WORKER)
    assert [str(job.result_id) for job in later] == [future.id]


def test_runner__a_task_taking_context_sees_its_job_and_attempt(now: datetime) -> None:
    own = tasks.own_id.enqueue()
    seen = tasks.context_seen.enqueue("a", 1)
    BackgroundJob.objects.filter(result_id=seen.id).update(
        errors=[{"attempt": 1, "exception_class_path": "builtins.OSError", "traceback": "t"}],
        worker_ids=["earlier-worker"],
        attempts=1,
    )

    jobs_run(budget_seconds=30, clock=at(now))

    own.refresh()
    seen.refresh()
    assert own.return_value == own.id
    worker = BackgroundJob.objects.get(result_id=seen.id).locked_by
    assert seen.return_value == {
        "attempt": 2,
        "status": "RUNNING",
        "args": ["a", 1],
        "workerIds": ["earlier-worker", worker],
        "errors": ["builtins.OSError"],
        "heartbeat": True,
    }
    assert HandlerRun.objects.get().attempt == 2


def test_release__gives_back_the_claim_and_its_worker_id(now: datetime) -> None:
    result = tasks.noop.enqueue()
    jobs = claim_batch(now=now, limit=10, worker=WORKER)

    release(jobs, worker=WORKER)

    result.refresh()
    assert (result.status, result.worker_ids, result.attempts) == (TaskResultStatus.READY, [], 0)


def test_run_jobs__a_queue_worker_claims_only_its_queue() -> None:
    email = tasks.send_email.enqueue("a@example.com")
    plain = tasks.noop.enqueue()

    call_command("run_jobs", "--queue", "emails", stdout=(out := _Out()))

    email.refresh()
    plain.refresh()
    assert (email.status, plain.status) == (TaskResultStatus.SUCCESSFUL, TaskResultStatus.READY)
    summary = json.loads(out.text)
    assert (summary["claimed"], summary["remainingBacklog"]) == (1, 0)  # its own queue's backlog: drained
    with pytest.raises(CommandError, match="--queue 'nope' is not in TASKS' QUEUES: default, emails"):
        call_command("run_jobs", "--queue", "nope")


def test_claim__each_claim_is_served_by_its_index(now: datetime) -> None:
    queues = ["default", "emails", "reports", "bulk"]
    BackgroundJob.objects.bulk_create(
        BackgroundJob(kind="test.record", queue=queues[n % 4], run_after=now, created_at=now) for n in range(4000)
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_backgroundjob")
    due = BackgroundJob.objects.filter(status="pending", run_after__lte=now).order_by("-priority", "run_after", "id")

    assert "jobs_claim_idx" in due[:100].explain()
    assert "jobs_queue_claim_idx" in due.filter(queue="emails")[:100].explain()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_worker_process__finds_a_task_by_its_module_path() -> None:
    # The child's JOB_HANDLER_MODULES does not list testsupport.tasks: it imports the task when it meets it.
    result = tasks.echo.enqueue("from", the="test")

    worker = procs.manage("run_jobs", "--budget", "30")
    out, err = worker.communicate(timeout=120)

    assert worker.returncode == 0, err
    result.refresh()
    assert (result.status, result.return_value) == (
        TaskResultStatus.SUCCESSFUL,
        {"args": ["from"], "kwargs": {"the": "test"}},
    )


def test_dead_task__requeued_from_the_admin_succeeds_and_its_result_follows(
    now: datetime, settings: Any, make_staff: Callable[..., User]
) -> None:
    settings.TESTSUPPORT_TASKS_FAIL = True
    result = tasks.fails_while_told.enqueue("invoice")
    drain_until_settled(now)
    result.refresh()
    assert (result.status, result.attempts) == (TaskResultStatus.FAILED, 1)  # a task runs once by default
    letter = DeadLetter.objects.get()
    assert (letter.kind, letter.job, letter.payload) == (
        "testsupport.tasks.fails_while_told",
        BackgroundJob.objects.get(result_id=result.id),
        {"args": ["invoice"], "kwargs": {}},
    )

    settings.TESTSUPPORT_TASKS_FAIL = False
    operator = make_staff("operator", "runs.view_deadletter", "runs.triage_deadletter")
    client = Client()
    client.force_login(operator)
    data = {"action": "requeue", "_selected_action": [letter.pk], "index": "0"}
    assert client.post("/admin/runs/deadletter/", data).status_code == 302

    result.refresh()
    assert (result.status, result.id, result.attempts, len(result.errors)) == (TaskResultStatus.READY, result.id, 1, 1)
    drain_until_settled(now + timedelta(days=1))
    result.refresh()
    assert (result.status, result.return_value) == (TaskResultStatus.SUCCESSFUL, "invoice done on attempt 1")
    assert (result.attempts, len(result.errors), result.args) == (2, 1, ["invoice"])
    assert result.enqueued_at == BackgroundJob.objects.get(result_id=result.id).created_at


class _Out:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass
