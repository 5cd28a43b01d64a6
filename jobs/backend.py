"""Orchestrator as a Django Tasks backend: `TASKS = {"default": {"BACKEND": "jobs.backend.OrchestratorBackend"}}`.

`.enqueue()` writes a BackgroundJob (kind: the task's module path; payload: its
arguments), which the runner executes as any job: leases, fencing, backoff, dead
letters, triage. `get_result()` reads the TaskResult back from the job row. What it
checks and refuses, and why: docs/tasks.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, TypeVar
from uuid import UUID

from django.core import checks
from django.utils import timezone
from django.utils.module_loading import import_string
from django_tasks.backends.base import BaseTaskBackend
from django_tasks.base import Task, TaskResult
from django_tasks.exceptions import InvalidTaskError, TaskResultDoesNotExist
from django_tasks.signals import task_enqueued
from typing_extensions import ParamSpec

from jobs.exceptions import InvalidJob
from jobs.models import BackgroundJob
from jobs.registry import KIND_RE, find_handler, get_handler, task_kind, task_register
from jobs.retry import options_problems
from jobs.services import QUEUE_RE, job_enqueue
from jobs.task_results import requeue_chain, task_result_of_job
from jobs.taskcall import TaskHandler, task_payload

T = TypeVar("T")
P = ParamSpec("P")

# The id of a job written before results had ids of their own: the job's id.
LEGACY_RESULT_ID_RE = re.compile(r"[1-9][0-9]{0,17}")
DOCS = "docs/tasks.md"


class OrchestratorBackend(BaseTaskBackend):
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def __init__(self, alias: str, params: dict[str, Any]) -> None:
        super().__init__(alias, params)
        self.params = params

    def validate_task(self, task: Task[Any, Any]) -> None:
        """Check `task` as the framework does, and that its module path can be a job kind; then register it."""
        super().validate_task(task)
        if not KIND_RE.fullmatch(task.module_path):
            raise InvalidTaskError(
                f"Task module path {task.module_path!r} cannot be a job kind: it must match {KIND_RE.pattern} "
                f"(at most 100 characters; see {DOCS})."
            )
        task_register(task)

    def enqueue(self, task: Task[P, T], args: P.args, kwargs: P.kwargs) -> TaskResult[T]:  # type: ignore[valid-type]
        """Write the task's job and return its result (READY); raise before writing anything if it cannot run.

        Arguments that are not JSON (or would not come back from JSON as they are)
        raise the framework's TypeError or ValueError; a task a worker could not import
        by its module path, or a job the queue refuses, raises InvalidTaskError.
        """
        self.validate_task(task)
        _check_importable(task)
        payload = task_payload(args, kwargs)
        registered = _registered_task(task_kind(task), task)
        try:
            job = job_enqueue(
                kind=task_kind(task),
                payload=payload,
                priority=task.priority,
                run_after=task.run_after,
                queue=task.queue_name,
                now=timezone.now(),
            ).job
        except InvalidJob as exc:
            if exc.field == "payload":  # the arguments: refused as the framework refuses what JSON cannot keep
                raise ValueError(f"Unsupported value: the task's arguments {exc.reason}") from exc
            raise InvalidTaskError(f"Task {task.module_path!r} cannot be enqueued: {exc} (see {DOCS}).") from exc
        result: TaskResult[T] = task_result_of_job(job, task=registered, backend=self.alias)
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult[Any]:
        """Return the TaskResult `result_id` (following its job's requeues); raise TaskResultDoesNotExist.

        The id is the job's random result id; a job written before those existed is
        found by its own id, which no newer job answers to.
        """
        job = _first_job(result_id)
        if job is None:
            raise TaskResultDoesNotExist(result_id)
        handler = find_handler(job.kind)
        if not isinstance(handler, TaskHandler):
            raise TaskResultDoesNotExist(f"{result_id} (job {job.pk} of kind {job.kind!r} does not run a task)")
        *history, latest = requeue_chain(job)
        return task_result_of_job(latest, task=handler.task, backend=self.alias, history=tuple(history))

    def check(self, **kwargs: Any) -> Iterable[checks.CheckMessage]:
        """Check this backend's QUEUES and OPTIONS (run by `manage.py check` through django_tasks)."""
        yield from super().check(**kwargs)
        queues = self.params.get("QUEUES", ["default"])
        if not isinstance(queues, list | tuple) or not all(
            isinstance(q, str) and QUEUE_RE.fullmatch(q) for q in queues
        ):
            yield checks.Error(
                f"TASKS[{self.alias!r}]['QUEUES'] must be a list of queue names matching {QUEUE_RE.pattern}; "
                f"got {queues!r}",
                hint=f'e.g. "QUEUES": ["default", "emails"] (see {DOCS})',
                id="jobs.E010",
            )
        for problem in options_problems(self.options):
            yield checks.Error(
                f"TASKS[{self.alias!r}]['OPTIONS'] {problem}: its default is used meanwhile",
                hint=f'e.g. "OPTIONS": {{"MAX_ATTEMPTS": 3, "RETRY_BASE_SECONDS": 10}} (see {DOCS}, "Retries")',
                id="jobs.E011",
            )


def configured_queues() -> set[str]:
    """Return the queues TASKS names for Orchestrator backends (empty: any queue name is valid)."""
    from django_tasks import task_backends

    backends = [backend for backend in task_backends.all() if isinstance(backend, OrchestratorBackend)]
    return set().union(*(backend.queues for backend in backends))


def _check_importable(task: Task[Any, Any]) -> None:
    """Raise InvalidTaskError unless a worker importing `task`'s module path would find this very task."""
    path = task.module_path
    if path.startswith("__main__."):
        raise InvalidTaskError(f"Task {path!r} is defined in a script (__main__), which a worker cannot import.")
    try:
        found = import_string(path)
    except ImportError as exc:
        raise InvalidTaskError(
            f"Task {path!r} cannot be imported by its module path ({exc}): define it at module level, "
            f"under its function's name (see {DOCS})."
        ) from exc
    if not isinstance(found, Task) or found.func is not task.func:
        raise InvalidTaskError(
            f"Task {path!r} is not what its module path imports ({found!r}): define it at module level, "
            f"under its function's name (see {DOCS})."
        )


def _first_job(result_id: Any) -> BackgroundJob | None:
    """Return the job whose TaskResult has the id `result_id`, or None."""
    if not isinstance(result_id, str):
        return None
    if LEGACY_RESULT_ID_RE.fullmatch(result_id):
        return BackgroundJob.objects.filter(pk=int(result_id), result_id__isnull=True).first()
    try:
        uuid = UUID(result_id)
    except ValueError:
        return None
    return BackgroundJob.objects.filter(result_id=uuid).first()


def _registered_task(kind: str, task: Task[Any, Any]) -> Task[Any, Any]:
    handler = get_handler(kind)
    return handler.task if isinstance(handler, TaskHandler) else task
