"""A Django Task run as a job: its arguments in the job's payload, its context from the job row.

A task's payload is `{"args": [...], "kwargs": {...}}`: what the backend writes at
enqueue, and what `POST /api/jobs` must send for a task's kind.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import TYPE_CHECKING, Any

from django.utils.version import PY311
from django_tasks.base import Task, TaskContext
from django_tasks.utils import normalize_json

from jobs.exceptions import InvalidJob
from jobs.task_results import task_result_of_job
from jobs.task_signals import task_started_heard, task_started_send, task_succeeded_send

if TYPE_CHECKING:
    from jobs.context import JobContext
    from jobs.models import BackgroundJob

PAYLOAD_KEYS = frozenset({"args", "kwargs"})


@dataclass(frozen=True, slots=PY311, kw_only=True)  # type: ignore[literal-required]  # as TaskContext is
class JobTaskContext(TaskContext):
    """The framework's TaskContext, and a way to extend the job's lease while a long task works."""

    _heartbeat: Callable[[], bool]

    def heartbeat(self) -> bool:
        """Extend this job's lease; return False when the lease was lost (stop working then)."""
        return self._heartbeat()


@dataclass(frozen=True)
class TaskHandler:
    """The registry's entry for a task: called with a JobContext as any handler is."""

    task: Task[Any, Any]

    def __call__(self, ctx: JobContext) -> Any:
        args, kwargs = task_arguments(ctx.payload)
        heard = task_started_heard(sender=self.sender)
        if heard or self.task.takes_context:
            result = task_result_of_job(ctx.job, task=self.task, backend=self.task.backend)
            if heard:
                task_started_send(result, sender=self.sender)
            if self.task.takes_context:
                context = JobTaskContext(task_result=result, _heartbeat=ctx.heartbeat)
                return self.task.call(context, *args, **kwargs)
        return self.task.call(*args, **kwargs)

    @cached_property
    def sender(self) -> type:
        """The class of the task's backend: the sender of its signals."""
        return type(self.task.get_backend())

    def succeeded(self, job: BackgroundJob, *, return_value: Any, finished_at: datetime) -> None:
        """Tell the `task_finished` receivers of `job`'s success, once it committed (jobs.observers)."""
        task_succeeded_send(job, task=self.task, return_value=return_value, finished_at=finished_at, sender=self.sender)


def task_payload(args: Any, kwargs: Any) -> dict[str, Any]:
    """Return the payload storing `args` and `kwargs`, or raise the framework's TypeError/ValueError.

    The framework's own normalisation comes first (tuples become lists; an unsupported
    type is a TypeError "Unsupported type: ..."); then the payload must come back from
    JSON unchanged, or the task would run with other arguments than it was given.
    """
    payload: dict[str, Any] = normalize_json({"args": args, "kwargs": kwargs})
    try:
        encoded = json.dumps(payload, allow_nan=False)
    except ValueError as exc:  # NaN or an infinity: JSON has no such number.
        raise ValueError(f"Unsupported value: {exc}") from exc
    if json.loads(encoded) != payload:
        raise TypeError("Unsupported type: a dict key that is not a string (JSON object keys are strings)")
    return payload


def task_arguments(payload: Any) -> tuple[list[Any], dict[str, Any]]:
    """Return the (args, kwargs) a task's payload holds; raise InvalidJob when it is not one."""
    if not isinstance(payload, dict) or not set(payload) <= PAYLOAD_KEYS:
        raise InvalidJob("payload", 'a task\'s payload is {"args": [...], "kwargs": {...}} (both optional)')
    args, kwargs = payload.get("args", []), payload.get("kwargs", {})
    if not isinstance(args, list):
        raise InvalidJob("payload", "args must be a list")
    if not isinstance(kwargs, dict):
        raise InvalidJob("payload", "kwargs must be an object")
    return args, kwargs
