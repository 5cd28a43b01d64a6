"""Retry policies: how many attempts a job gets, and how long a failed attempt waits (docs/tasks.md, "Retries").

Through the Tasks API a task runs once unless its policy says otherwise: its backend's
OPTIONS give the default (MAX_ATTEMPTS, RETRY_BASE_SECONDS, RETRY_MAX_SECONDS), and
`@retry_policy(...)` above a `@task` overrides them for that task. A `@job_handler`
function keeps the queue's own policy: five attempts, JOBS_RETRY_* backoff. A job's
attempts are fixed when it is enqueued; its backoff is read when an attempt fails.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django_tasks.base import Task
from django_tasks.exceptions import InvalidTaskBackendError

from jobs.registry import get_handler
from jobs.taskcall import TaskHandler

TASK_MAX_ATTEMPTS = 1  # what every other Tasks backend does: run once
HANDLER_MAX_ATTEMPTS = 5
MAX_ATTEMPTS_LIMIT = 100  # the job table's check constraint
# OPTIONS key -> RetryPolicy field.
OPTIONS = {"MAX_ATTEMPTS": "max_attempts", "RETRY_BASE_SECONDS": "base_seconds", "RETRY_MAX_SECONDS": "max_seconds"}
DOCS = "docs/tasks.md"


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int
    base_seconds: float
    max_seconds: float


# A task function -> the fields @retry_policy set for it.
_overrides: dict[Callable[..., Any], dict[str, Any]] = {}


def retry_policy(
    *, max_attempts: int | None = None, retry_base_seconds: float | None = None, retry_max_seconds: float | None = None
) -> Callable[[Task[Any, Any]], Task[Any, Any]]:
    """Give the decorated `@task` (applied above it) its own attempts and backoff; unset ones follow its backend."""
    fields = {"max_attempts": max_attempts, "base_seconds": retry_base_seconds, "max_seconds": retry_max_seconds}
    chosen = {name: value for name, value in fields.items() if value is not None}
    for name, value in chosen.items():
        if problem := _problem(name, value):
            raise ImproperlyConfigured(f"@retry_policy: {problem} (see {DOCS})")

    def register(target: Task[Any, Any]) -> Task[Any, Any]:
        if not isinstance(target, Task):
            raise ImproperlyConfigured(f"@retry_policy goes above @task, over a task; got {target!r} (see {DOCS})")
        _overrides[target.func] = chosen
        return target

    return register


def handler_policy() -> RetryPolicy:
    """Return the queue's own policy, which `@job_handler` functions follow."""
    return RetryPolicy(HANDLER_MAX_ATTEMPTS, settings.JOBS_RETRY_BASE_SECONDS, settings.JOBS_RETRY_MAX_SECONDS)


def task_policy(task: Task[Any, Any]) -> RetryPolicy:
    """Return `task`'s policy: @retry_policy's fields, else its backend's OPTIONS, else one attempt."""
    policy = replace(handler_policy(), max_attempts=TASK_MAX_ATTEMPTS)
    try:
        options = task.get_backend().options
    except InvalidTaskBackendError:  # a backend alias since removed from TASKS: the defaults hold
        options = {}
    policy = replace(policy, **options_fields(options))
    return replace(policy, **_overrides.get(task.func, {}))


def kind_policy(kind: str) -> RetryPolicy:
    """Return the policy of jobs of `kind`: their task's, or the queue's own."""
    handler = get_handler(kind)
    return task_policy(handler.task) if isinstance(handler, TaskHandler) else handler_policy()


def options_fields(options: object) -> dict[str, Any]:
    """Return the RetryPolicy fields a backend's OPTIONS set validly (a bad one is left out: see options_problems)."""
    if not isinstance(options, Mapping):
        return {}
    return {
        OPTIONS[key]: value for key, value in options.items() if key in OPTIONS and not _problem(OPTIONS[key], value)
    }


def options_problems(options: object) -> list[str]:
    """Return what is wrong with a backend's OPTIONS, one message per bad key."""
    if not isinstance(options, Mapping):
        return [f"must be a dict of options ({', '.join(OPTIONS)}), got {options!r}"]
    problems = [f"{key!r} is not an option (known: {', '.join(OPTIONS)})" for key in options if key not in OPTIONS]
    problems += [
        f"{key}: {problem}" for key, value in options.items() if (problem := _problem(OPTIONS.get(key), value))
    ]
    return problems


def _problem(field: str | None, value: Any) -> str:
    if field is None:
        return ""
    if field == "max_attempts":
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ATTEMPTS_LIMIT:
            return f"max attempts must be an integer from 1 to {MAX_ATTEMPTS_LIMIT}, got {value!r}"
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        return f"a backoff must be a number of seconds, 0 or more, got {value!r}"
    return ""
