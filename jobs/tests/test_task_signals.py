"""The Tasks framework's signals, sent by a task's job as the framework's own backends send them (jobs.task_signals).

`task_enqueued`, `task_started` and `task_finished` once each, the backend's class as
sender; `task_finished` after the transaction that records the outcome commits, so a
receiver reading the result back sees it, and only for an outcome that stayed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import OperationalError, connections, transaction
from django.dispatch import Signal
from django_tasks import TaskResultStatus
from django_tasks.base import TaskResult
from django_tasks.signals import task_enqueued, task_finished, task_started
from freezegun import freeze_time

from jobs import registry
from jobs.backend import OrchestratorBackend
from jobs.claim import claim_batch
from jobs.exceptions import ConnectionLost, JobCancelled, LeaseExpired
from jobs.maintenance import recover_expired_leases
from jobs.models import BackgroundJob
from jobs.recovery import claims_take_back
from jobs.runner import jobs_run
from jobs.triage import job_cancel
from testsupport import tasks

Seen = list[tuple[str, type, TaskResult[Any]]]


@pytest.fixture
def seen() -> Iterator[Seen]:
    """Every task signal received, in order: (signal, sender, result)."""
    received: Seen = []
    signals: dict[str, Signal] = {"enqueued": task_enqueued, "started": task_started, "finished": task_finished}
    receivers = {}
    for name, signal in signals.items():

        def receive(sender: type, task_result: TaskResult[Any], name: str = name, **kwargs: Any) -> None:
            received.append((name, sender, task_result))

        receivers[name] = receive
        signal.connect(receive, weak=False)
    yield received
    for name, signal in signals.items():
        signal.disconnect(receivers[name])


@pytest.fixture(autouse=True)
def _enqueue_at(now: datetime) -> Iterator[None]:
    """Enqueue at `now` (the backend reads the clock itself); the runner is given its clock."""
    with freeze_time(now):
        yield


def at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def statuses(seen: Seen, result_id: str) -> list[tuple[str, str]]:
    """Return (signal, result status) for the signals of one task result, in order."""
    assert {sender for _, sender, _ in seen} <= {OrchestratorBackend}
    return [(name, result.status) for name, _, result in seen if result.id == result_id]


def committed_status(result_id: str) -> str:
    """Return the job's status as another connection sees it: committed, or not at all."""
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("SELECT status FROM jobs_backgroundjob WHERE result_id = %s", [result_id])
            row = cursor.fetchone()
            return "(not committed)" if row is None else str(row[0])
    finally:
        other.close()


@pytest.mark.django_db(transaction=True)
def test_signals__a_task_that_succeeds_sends_each_once_and_is_committed_when_finished(
    seen: Seen, now: datetime
) -> None:
    told: list[str] = []
    task_finished.connect(lambda task_result, **kw: told.append(committed_status(task_result.id)), weak=False)
    try:
        result = tasks.meaning_of_life.enqueue()
        other = tasks.noop.enqueue()  # the same group: one commit for both
        jobs_run(budget_seconds=30, clock=at(now))
    finally:
        task_finished.receivers.pop()

    assert statuses(seen, result.id) == [("enqueued", "READY"), ("started", "RUNNING"), ("finished", "SUCCESSFUL")]
    assert statuses(seen, other.id) == [("enqueued", "READY"), ("started", "RUNNING"), ("finished", "SUCCESSFUL")]
    assert told == ["succeeded", "succeeded"]  # each receiver ran once its job's success was committed
    finished = next(task_result for name, _, task_result in seen if name == "finished" and task_result.id == result.id)
    result.refresh()
    assert (finished.return_value, finished.attempts, finished.worker_ids) == (42, 1, result.worker_ids)
    assert finished.started_at is not None and finished.started_at == result.started_at
    assert finished.finished_at == result.finished_at  # as its success mark wrote it


@pytest.mark.django_db(transaction=True)
def test_signals__a_group_of_successes_sends_one_finished_each_after_its_commit_and_none_when_rolled_back(
    seen: Seen, now: datetime, settings: Any
) -> None:
    settings.JOBS_GROUP_MAX_MS = 600_000
    told: list[str] = []
    task_finished.connect(lambda task_result, **kw: told.append(committed_status(task_result.id)), weak=False)
    try:
        with transaction.atomic():  # a caller's transaction holds the groups: rolled back, nothing is told
            kept = [tasks.noop.enqueue() for _ in range(3)]
        with transaction.atomic():
            undone = [tasks.echo.enqueue(n) for n in range(3)]
            summary = jobs_run(budget_seconds=30, clock=at(now))
            transaction.set_rollback(True)
        assert summary.succeeded == 6
        assert [name for name, _, _ in seen if name == "finished"] == told == []  # no success of theirs committed

        summary = jobs_run(budget_seconds=30, clock=at(now))  # the three kept, in one group
    finally:
        task_finished.receivers.pop()

    assert summary.succeeded == 3
    finished = [(task_result.id, task_result.status) for name, _, task_result in seen if name == "finished"]
    assert sorted(finished) == sorted((result.id, "SUCCESSFUL") for result in kept)  # once each
    assert all(("finished", "SUCCESSFUL") not in statuses(seen, result.id) for result in undone)
    assert told == ["succeeded"] * 3  # each told after the group's one commit


@pytest.mark.django_db
def test_signals__the_frameworks_log_receivers_log_a_success_when_its_logger_allows(
    now: datetime, caplog: pytest.LogCaptureFixture, django_capture_on_commit_callbacks: Any
) -> None:
    quiet = tasks.noop.enqueue()
    with caplog.at_level(logging.WARNING, logger="django_tasks"), django_capture_on_commit_callbacks(execute=True):
        jobs_run(budget_seconds=30, clock=at(now))
    heard = tasks.meaning_of_life.enqueue()
    with caplog.at_level(logging.DEBUG, logger="django_tasks"), django_capture_on_commit_callbacks(execute=True):
        jobs_run(budget_seconds=30, clock=at(now))

    logged = [(record.levelname, record.getMessage()) for record in caplog.records if record.name == "django_tasks"]
    path = "testsupport.tasks.meaning_of_life"
    assert logged == [
        ("INFO", f"Task id={heard.id} path={path} state=RUNNING"),
        ("INFO", f"Task id={heard.id} path={path} state=SUCCESSFUL"),
    ]
    assert all(quiet.id not in message for _, message in logged)


@pytest.mark.django_db
def test_signals__a_receiver_connected_for_the_backend_alone_hears_a_start_and_a_success(
    now: datetime, django_capture_on_commit_callbacks: Any
) -> None:
    heard: list[tuple[str, str]] = []

    def receive(sender: type, task_result: TaskResult[Any], **kwargs: Any) -> None:
        heard.append((task_result.id, task_result.status))

    task_started.connect(receive, sender=OrchestratorBackend, weak=False)
    task_finished.connect(receive, sender=OrchestratorBackend, weak=False)
    try:
        result = tasks.meaning_of_life.enqueue()
        with django_capture_on_commit_callbacks(execute=True):
            jobs_run(budget_seconds=30, clock=at(now))
    finally:
        task_started.disconnect(receive, sender=OrchestratorBackend)
        task_finished.disconnect(receive, sender=OrchestratorBackend)

    assert heard == [(result.id, "RUNNING"), (result.id, "SUCCESSFUL")]


@pytest.mark.django_db
def test_signals__a_task_that_fails_for_good_sends_finished_failed_with_its_traceback_to_the_log(
    seen: Seen, now: datetime, caplog: pytest.LogCaptureFixture, django_capture_on_commit_callbacks: Any
) -> None:
    result = tasks.value_error.enqueue()

    with caplog.at_level(logging.INFO, logger="django_tasks"), django_capture_on_commit_callbacks(execute=True):
        jobs_run(budget_seconds=30, clock=at(now))

    assert statuses(seen, result.id) == [("enqueued", "READY"), ("started", "RUNNING"), ("finished", "FAILED")]
    finished = seen[-1][2]
    assert [error.exception_class for error in finished.errors] == [ValueError]
    # django-tasks' own receivers: the start at INFO, the failure through logger.exception, with its exception.
    logged = [(record.levelname, record.getMessage()) for record in caplog.records if record.name == "django_tasks"]
    path = "testsupport.tasks.value_error"
    assert logged == [
        ("INFO", f"Task id={result.id} path={path} state=RUNNING"),
        ("ERROR", f"Task id={result.id} path={path} state=FAILED"),
    ]
    failure = [record for record in caplog.records if record.name == "django_tasks"][-1]
    assert failure.exc_info is not None and isinstance(failure.exc_info[1], ValueError)
    assert str(failure.exc_info[1]) == "This task failed due to ValueError"


@pytest.mark.django_db
def test_signals__an_attempt_that_will_be_retried_sends_started_but_not_finished(
    seen: Seen, now: datetime, django_capture_on_commit_callbacks: Any
) -> None:
    result = tasks.value_error_retried.enqueue()  # five attempts

    with django_capture_on_commit_callbacks(execute=True):
        jobs_run(budget_seconds=30, clock=at(now))

    result.refresh()
    assert result.status == TaskResultStatus.READY
    assert statuses(seen, result.id) == [("enqueued", "READY"), ("started", "RUNNING")]


@pytest.mark.django_db(transaction=True)
def test_signals__a_group_whose_commit_is_refused_tells_each_task_once_how_it_ended(
    seen: Seen, now: datetime, settings: Any
) -> None:
    settings.JOBS_GROUP_MAX_MS = 600_000
    fine = tasks.meaning_of_life.using(priority=2).enqueue()
    guilty = tasks.dangling_note.using(priority=1).enqueue()  # its note fails the group's COMMIT

    summary = jobs_run(budget_seconds=30, clock=at(now))

    # The group ran both, its COMMIT failed, and each job ran again alone: one finished each, as it ended.
    assert (summary.succeeded, summary.dead) == (1, 1)
    finished = [(task_result.id, task_result.status) for name, _, task_result in seen if name == "finished"]
    assert sorted(finished) == sorted([(fine.id, "SUCCESSFUL"), (guilty.id, "FAILED")])
    [error] = next(
        task_result for name, _, task_result in seen if task_result.id == guilty.id and name == "finished"
    ).errors
    assert error.exception_class_path == "django.db.utils.IntegrityError"


@pytest.mark.django_db
def test_signals__a_task_buried_by_lease_recovery_sends_finished_failed(
    seen: Seen, now: datetime, django_capture_on_commit_callbacks: Any
) -> None:
    result = tasks.noop.enqueue()
    BackgroundJob.objects.update(
        status="running", attempts=1, started_at=now, locked_by="w", lease_expires_at=now, worker_ids=["w"]
    )

    with django_capture_on_commit_callbacks(execute=True):
        recover_expired_leases(now=now + timedelta(minutes=5))

    assert statuses(seen, result.id) == [("enqueued", "READY"), ("finished", "FAILED")]
    assert [error.exception_class for error in seen[-1][2].errors] == [LeaseExpired]


@pytest.mark.django_db
def test_signals__a_task_whose_worker_lost_its_connection_sends_finished_failed_once_taken_back(
    seen: Seen, now: datetime, django_capture_on_commit_callbacks: Any
) -> None:
    result = tasks.noop.enqueue()
    [claimed] = claim_batch(now=now, limit=1, worker="host:1:abc")
    claimed.started_at = now  # its function started, then the worker lost the database

    with django_capture_on_commit_callbacks(execute=True):
        claims_take_back(claims=[claimed], error=OperationalError("server closed"), lost_at=now, now=now)

    assert statuses(seen, result.id) == [("enqueued", "READY"), ("finished", "FAILED")]
    assert [error.exception_class for error in seen[-1][2].errors] == [ConnectionLost]


@pytest.mark.django_db
def test_signals__a_task_cancelled_by_an_operator_sends_finished_failed_once_after_the_commit(
    seen: Seen,
    now: datetime,
    caplog: pytest.LogCaptureFixture,
    django_capture_on_commit_callbacks: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    result = tasks.noop.enqueue()
    job = BackgroundJob.objects.get(result_id=result.id)
    monkeypatch.delitem(registry._handlers, job.kind)  # the web process that cancels it never imported the task

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        job_cancel(job_ids=[job.pk], by="ops", now=now)
    assert statuses(seen, result.id) == [("enqueued", "READY")]  # nothing told before the commit
    with caplog.at_level(logging.INFO, logger="django_tasks"):
        for callback in callbacks:
            callback()

    assert statuses(seen, result.id) == [("enqueued", "READY"), ("finished", "FAILED")]
    assert [error.exception_class for error in seen[-1][2].errors] == [JobCancelled]
    failure = [record for record in caplog.records if record.name == "django_tasks"][-1]
    assert failure.exc_info is not None and isinstance(failure.exc_info[1], JobCancelled)


@pytest.mark.django_db
def test_signals__a_receiver_that_raises_after_the_commit_is_logged_and_the_others_still_run(
    seen: Seen, now: datetime, caplog: pytest.LogCaptureFixture, django_capture_on_commit_callbacks: Any
) -> None:
    def broken(**kwargs: Any) -> None:
        raise RuntimeError("a receiver's bug")

    task_finished.connect(broken, weak=False)
    try:
        result = tasks.meaning_of_life.enqueue()
        with django_capture_on_commit_callbacks(execute=True):
            summary = jobs_run(budget_seconds=30, clock=at(now))
    finally:
        task_finished.disconnect(broken)

    result.refresh()
    assert (summary.succeeded, result.status) == (1, TaskResultStatus.SUCCESSFUL)
    assert statuses(seen, result.id)[-1] == ("finished", "SUCCESSFUL")
    [record] = [record for record in caplog.records if record.getMessage() == "a task_finished receiver raised"]
    assert record.exc_info is not None and str(record.exc_info[1]) == "a receiver's bug"
