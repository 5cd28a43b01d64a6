"""Django Tasks for tests, on the Orchestrator backend (the test settings' TASKS default).

Modelled on the django-tasks package's own test tasks, plus a few that look at their
context and one that fails while a setting says so (a dead letter, then a requeue).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django_tasks import TaskContext, task

from jobs.models import BackgroundJob
from jobs.registry import autocommit
from jobs.retry import retry_policy
from testsupport.models import HandlerNote, HandlerRun


@task
def noop(*args: Any, **kwargs: Any) -> None:
    return None


@task()
async def noop_async(*args: Any, **kwargs: Any) -> None:
    return None


@task
def meaning_of_life() -> int:
    return 42


@task
async def meaning_of_life_async() -> int:
    return 42


@task
def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs}


@task
def value_error() -> None:
    raise ValueError("This task failed due to ValueError")


@retry_policy(max_attempts=5, retry_base_seconds=2, retry_max_seconds=60)
@task
def value_error_retried() -> None:
    raise ValueError("This task failed due to ValueError")


@task
def complex_exception() -> None:
    raise ValueError(ValueError("This task failed"))


@task
def dangling_note() -> None:
    """Note a run that does not exist: the task returns, and its COMMIT refuses the note (a deferred foreign key)."""
    HandlerNote.objects.create(run_id=-1)


# Retried on failure, yet a return value no row can keep is never retried: it would be the same every time.
@retry_policy(max_attempts=3)
@task
def lambda_return_value() -> Any:
    return lambda: True  # Neither JSON nor anything else a row can keep.


@retry_policy(max_attempts=3)
@task
def sized_return_value(size: int) -> str:
    return "x" * size


@task(takes_context=True)
def own_id(context: TaskContext) -> str:
    return context.task_result.id


@task(takes_context=True)
def context_seen(context: TaskContext, *args: Any) -> dict[str, Any]:
    """Return what the context showed, and record the run (committed only if the attempt succeeds)."""
    result = context.task_result
    job = BackgroundJob.objects.get(result_id=result.id)
    HandlerRun.objects.create(job_id=job.pk, attempt=context.attempt, worker_pid=os.getpid())
    return {
        "attempt": context.attempt,
        "status": result.status,
        "args": result.args,
        "workerIds": result.worker_ids,
        "errors": [error.exception_class_path for error in result.errors],
        "heartbeat": context.heartbeat(),  # type: ignore[attr-defined]
    }


@task(takes_context=True)
def fails_while_told(context: TaskContext, label: str) -> str:
    """Fail while settings.TESTSUPPORT_TASKS_FAIL is true (so a test can make it die, then heal it)."""
    if getattr(settings, "TESTSUPPORT_TASKS_FAIL", False):
        raise RuntimeError(f"{label} told to fail on attempt {context.attempt}")
    return f"{label} done on attempt {context.attempt}"


@task(takes_context=True, queue_name="emails")
def queue_seen(context: TaskContext) -> str:
    """Return the queue its own result names."""
    return context.task_result.task.queue_name


@task(priority=5, queue_name="emails")
def send_email(to: str) -> str:
    return f"sent to {to}"


def not_a_task() -> None:
    """A plain function: a job kind pointing here is not a task."""


def _hidden() -> None:
    """Defined under one name, made a task under another: its module path imports the plain function."""


renamed = task(_hidden)


def ghost() -> None:
    """A function claiming a module that does not exist: its module path cannot be imported."""


ghost.__module__ = "no_such_module"
ghost_task = task(ghost)


@task
def exits() -> None:
    """Exit as argparse or click inside a task would: sys.exit(0)."""
    sys.exit(0)


@autocommit
@task(takes_context=True)
def autocommit_writes(context: TaskContext) -> int:
    """Do what only autocommit allows: a durable block, insert or ignore by catching the error, close the connection."""
    with transaction.atomic(durable=True):
        run = HandlerRun.objects.create(
            job_id=int(context.task_result.id), attempt=context.attempt, worker_pid=os.getpid()
        )
    try:  # noqa: SIM105 (the idiom as applications write it: under autocommit the failed statement ends alone)
        HandlerRun.objects.create(pk=run.pk, job_id=run.job_id, attempt=run.attempt, worker_pid=run.worker_pid)
    except IntegrityError:
        pass
    connection.close()
    return run.pk
