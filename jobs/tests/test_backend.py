"""The Tasks backend at enqueue and result lookup: the django-tasks package's expectations of a backend.

Modelled on the package's own backend test suites (its database backend's above all),
against PostgreSQL; what the runner makes of the jobs is test_backend_runs.py.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, cast
from uuid import UUID

import pytest
from asgiref.sync import async_to_sync
from django.db import transaction
from django.utils import timezone
from django_tasks import TaskResultStatus, default_task_backend, task, task_backends
from django_tasks.base import Task
from django_tasks.exceptions import InvalidTaskError, TaskResultDoesNotExist, TaskResultMismatch
from django_tasks.signals import task_enqueued

from jobs import demo
from jobs.backend import OrchestratorBackend
from jobs.models import BackgroundJob
from jobs.runner import jobs_run
from jobs.services import MAX_PAYLOAD_BYTES, job_enqueue
from testsupport import tasks

pytestmark = pytest.mark.django_db


@pytest.fixture
def enqueued_signals() -> Any:
    received: list[tuple[type, Any]] = []

    def capture(sender: type, task_result: Any, **kwargs: Any) -> None:
        received.append((sender, task_result))

    task_enqueued.connect(capture, dispatch_uid="test_backend", weak=False)
    yield received
    task_enqueued.disconnect(capture, dispatch_uid="test_backend")


def test_backend__is_the_default_and_passes_the_framework_checks() -> None:
    backend = task_backends["default"]

    assert isinstance(backend, OrchestratorBackend)
    assert default_task_backend == backend
    assert list(backend.check()) == []
    assert (backend.supports_defer, backend.supports_priority, backend.supports_get_result) == (True, True, True)
    assert backend.supports_async_task is True


@pytest.mark.parametrize("target", [tasks.noop, tasks.noop_async])
def test_enqueue__writes_a_job_and_returns_a_ready_result(
    target: Task[Any, Any], enqueued_signals: list[Any], django_assert_num_queries: Any
) -> None:
    with django_assert_num_queries(1):
        result = target.enqueue(1, two=3)

    job = BackgroundJob.objects.get()
    assert (job.kind, job.payload, job.status) == (target.module_path, {"args": [1], "kwargs": {"two": 3}}, "pending")
    assert (job.priority, job.queue, job.run_after, job.max_attempts) == (0, "default", job.created_at, 1)
    assert result.id == str(job.result_id)
    assert UUID(result.id).version == 4
    assert (result.status, result.is_finished, result.attempts) == (TaskResultStatus.READY, False, 0)
    assert (result.started_at, result.last_attempted_at, result.finished_at) == (None, None, None)
    assert result.enqueued_at == job.created_at
    assert (result.task, result.args, result.kwargs, result.backend) == (target, [1], {"two": 3}, "default")
    with pytest.raises(ValueError, match="Task has not finished yet"):
        result.return_value  # noqa: B018
    assert enqueued_signals == [(OrchestratorBackend, result)]


def test_aenqueue__writes_a_job_and_returns_a_ready_result(enqueued_signals: list[Any]) -> None:
    result = async_to_sync(tasks.noop_async.aenqueue)()

    assert BackgroundJob.objects.get().result_id == UUID(result.id)
    assert (result.status, result.task, result.args, result.kwargs) == (
        TaskResultStatus.READY,
        tasks.noop_async,
        [],
        {},
    )
    assert enqueued_signals == [(OrchestratorBackend, result)]


def test_enqueue__logs_through_the_framework(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("DEBUG", logger="django_tasks"):
        result = tasks.noop.enqueue()

    assert [record.getMessage() for record in caplog.records if record.name == "django_tasks"] == [
        f"Task id={result.id} path=testsupport.tasks.noop enqueued backend=default"
    ]


def test_enqueue__is_part_of_the_callers_transaction() -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        tasks.noop.enqueue()
        assert BackgroundJob.objects.count() == 1
        raise RuntimeError("the view failed after enqueueing")

    assert not BackgroundJob.objects.exists()


def test_enqueue__priority_run_after_and_queue_go_to_the_row(now: datetime) -> None:
    result = tasks.noop.using(priority=-7, run_after=now, queue_name="emails").enqueue()

    job = BackgroundJob.objects.get()
    assert (job.priority, job.run_after, job.queue) == (-7, now, "emails")
    assert (result.task.priority, result.task.run_after, result.task.queue_name) == (-7, now, "emails")
    assert tasks.send_email.enqueue("a@example.com").task == tasks.send_email  # its decorator's priority and queue


def test_enqueue__a_job_handler_name_is_the_kind_of_its_tasks_jobs() -> None:
    result = demo.echo.enqueue(message="hi")

    job = BackgroundJob.objects.get()
    assert (job.kind, job.payload) == ("demo.echo", {"args": [], "kwargs": {"message": "hi"}})
    assert demo.echo.get_result(result.id) == result


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "message"),
    [
        ((datetime(2026, 1, 1),), {}, TypeError, "Unsupported type: <class 'datetime.datetime'>"),
        ((), {"when": object()}, TypeError, "Unsupported type: <class 'object'>"),
        (({1: "one"},), {}, TypeError, "a dict key that is not a string"),
        ((float("nan"),), {}, ValueError, "Unsupported value"),
        ((b"\xff",), {}, ValueError, "Unsupported value"),
        (("x" * MAX_PAYLOAD_BYTES,), {}, ValueError, "is larger than 256 KiB"),
        (("nul\x00",), {}, ValueError, "contains a NUL character"),
    ],
)
def test_enqueue__arguments_that_json_would_not_keep_are_refused_and_nothing_is_written(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        tasks.noop.enqueue(*args, **kwargs)
    with pytest.raises(error, match=message):
        async_to_sync(tasks.noop.aenqueue)(*args, **kwargs)

    assert not BackgroundJob.objects.exists()


@pytest.mark.parametrize(
    ("target", "message"),
    [
        (tasks.renamed, r"Task 'testsupport.tasks._hidden' is not what its module path imports"),
        (tasks.ghost_task, r"Task 'no_such_module.ghost' cannot be imported by its module path"),
    ],
)
def test_enqueue__a_task_a_worker_could_not_import_is_refused_and_nothing_is_written(
    target: Task[Any, Any], message: str
) -> None:
    with pytest.raises(InvalidTaskError, match=message):
        target.enqueue()

    assert not BackgroundJob.objects.exists()


def test_task__the_framework_refuses_what_no_worker_could_run() -> None:
    def local() -> None: ...

    with pytest.raises(InvalidTaskError, match="Task function must be defined at a module level"):
        task(local)
    with pytest.raises(InvalidTaskError, match="Queue 'nope' is not valid for backend"):
        tasks.noop.using(queue_name="nope")
    with pytest.raises(InvalidTaskError, match="run_after must be an aware datetime"):
        tasks.noop.using(run_after=datetime(2026, 1, 1))
    with pytest.raises(InvalidTaskError, match="priority must be a whole number between -100 and 100"):
        tasks.noop.using(priority=101)


def test_enqueue__a_job_the_queue_refuses_is_an_invalid_task(now: datetime) -> None:
    with pytest.raises(InvalidTaskError, match="runAfter: must be within a year from now"):
        tasks.noop.using(run_after=now.replace(year=now.year + 2)).enqueue()

    assert not BackgroundJob.objects.exists()


def test_get_result__is_the_enqueued_result_in_one_query(django_assert_num_queries: Any) -> None:
    result = tasks.noop.enqueue()

    with django_assert_num_queries(1):
        assert default_task_backend.get_result(result.id) == result
    assert tasks.noop.get_result(result.id) == result
    assert async_to_sync(tasks.noop.aget_result)(result.id) == result
    assert async_to_sync(default_task_backend.aget_result)(result.id) == result


def test_get_result__of_another_task_is_a_mismatch() -> None:
    result = tasks.noop_async.enqueue()

    with pytest.raises(TaskResultMismatch, match="Task does not match"):
        tasks.noop.get_result(result.id)


@pytest.mark.parametrize(
    "result_id",
    ["999999", "0", "-1", "abc", "1e3", "", "12345678901234567890", "2b4e7c5e-0d6f-4c55-9a8e-4b1f3f0b9b6e"],
)
def test_get_result__of_no_such_job_does_not_exist(result_id: str) -> None:
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(result_id)
    with pytest.raises(TaskResultDoesNotExist):
        async_to_sync(default_task_backend.aget_result)(result_id)


def test_get_result__a_result_id_is_random_and_a_job_id_reads_only_a_job_older_than_result_ids() -> None:
    result = tasks.noop.enqueue()
    job = BackgroundJob.objects.get()
    older = BackgroundJob.objects.create(
        kind="testsupport.tasks.noop",
        payload={"args": [], "kwargs": {}},
        run_after=job.created_at,
        created_at=job.created_at,
    )

    assert UUID(result.id).version == 4 and result.id != str(job.pk)
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(str(job.pk))  # a neighbour's id guessed from one's own tells nothing
    assert default_task_backend.get_result(result.id.upper()).id == result.id
    legacy = default_task_backend.get_result(str(older.pk))
    assert (legacy.id, legacy.status, legacy.task) == (str(older.pk), TaskResultStatus.READY, tasks.noop)


def test_result__of_a_queue_retired_from_queues_is_read_and_its_job_still_runs(settings: Any, now: datetime) -> None:
    contextual = tasks.queue_seen.enqueue()  # on "emails", with its context
    plain = tasks.noop.using(queue_name="emails").enqueue()
    # "emails" retired from this process's QUEUES (or never listed in it: a worker configured apart from the web).
    settings.TASKS = {"default": {"BACKEND": "jobs.backend.OrchestratorBackend", "QUEUES": ["default"]}}

    read = default_task_backend.get_result(plain.id)
    plain.refresh()
    assert (read.task.queue_name, read.status, plain.status) == ("emails", TaskResultStatus.READY, "READY")
    summary = jobs_run(budget_seconds=30, clock=lambda: timezone.now())
    contextual.refresh()
    plain.refresh()
    assert (summary.succeeded, contextual.return_value, plain.status) == (2, "emails", TaskResultStatus.SUCCESSFUL)


def test_get_result__of_a_job_that_runs_no_task_does_not_exist(now: datetime) -> None:
    handler_job = job_enqueue(kind="test.record", now=now).job
    odd_job = BackgroundJob.objects.create(kind="testsupport.tasks.not_a_task", payload={})

    for job in (handler_job, odd_job):
        with pytest.raises(TaskResultDoesNotExist, match="does not run a task"):
            default_task_backend.get_result(str(job.pk))


def test_enqueue_over_http__a_tasks_kind_takes_its_arguments(client: Any, settings: Any) -> None:
    settings.JOBS_API_TOKEN = "t"
    post = cast(Callable[..., Any], client.post)
    headers = {"Authorization": "Bearer t"}
    ok = post(
        "/api/jobs",
        {"kind": "demo.echo", "payload": {"kwargs": {"message": "hi"}}},
        content_type="application/json",
        headers=headers,
    )
    bad = post(
        "/api/jobs",
        {"kind": "demo.echo", "payload": {"message": "hi"}},
        content_type="application/json",
        headers=headers,
    )

    assert ok.status_code == 201
    assert demo.echo.get_result(ok.json()["resultId"]).kwargs == {"message": "hi"}
    assert (bad.status_code, bad.json()["field"]) == (400, "payload")
    assert bad.json()["error"].startswith('payload: a task\'s payload is {"args": [...], "kwargs": {...}}')
    assert BackgroundJob.objects.count() == 1


def test_tests_can_swap_in_the_frameworks_own_backends(settings: Any) -> None:
    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}
    recorded = demo.echo.enqueue(message="not run")
    assert default_task_backend.results == [recorded]  # type: ignore[attr-defined]

    settings.TASKS = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}
    ran = demo.echo.enqueue(message="run at once")
    assert (ran.status, ran.return_value) == (TaskResultStatus.SUCCESSFUL, {"message": "run at once"})

    assert not BackgroundJob.objects.exists()
