"""A job row as the Tasks framework's TaskResult: status, times, errors, return value and workers.

A job that died and was requeued from the admin lives on in the fresh job its dead
letter created: the result of the first one follows that chain to the latest job, so
the TaskResult an application holds shows the requeue and its outcome.
"""

from __future__ import annotations

import copy
from datetime import datetime
from functools import lru_cache
from typing import Any

from django_tasks.base import Task, TaskError, TaskResult, TaskResultStatus

from jobs.models import BackgroundJob

STATUSES = {
    BackgroundJob.Status.PENDING: TaskResultStatus.READY,
    BackgroundJob.Status.RUNNING: TaskResultStatus.RUNNING,
    BackgroundJob.Status.SUCCEEDED: TaskResultStatus.SUCCESSFUL,
    BackgroundJob.Status.DEAD: TaskResultStatus.FAILED,
    BackgroundJob.Status.CANCELLED: TaskResultStatus.FAILED,
}
# A dead letter requeued into a job that died and was requeued again...: followed this far.
MAX_REQUEUES_FOLLOWED = 20


def task_result_of_job(
    job: BackgroundJob, *, task: Task[Any, Any], backend: str, history: tuple[BackgroundJob, ...] = ()
) -> TaskResult[Any]:
    """Return the TaskResult of `job`, a job of `task`.

    With `history` (the jobs this one was requeued from, oldest first), the id, the
    arguments and `enqueued_at` are the first job's, the errors and workers those of
    every job in turn, and everything else the latest job's.
    """
    first = history[0] if history else job
    result: TaskResult[Any] = TaskResult(
        task=_task_as_enqueued(task, first, backend=backend),
        id=result_id(first),
        status=STATUSES[BackgroundJob.Status(job.status)],
        enqueued_at=first.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        last_attempted_at=job.started_at,
        args=first.payload.get("args", []),
        kwargs=first.payload.get("kwargs", {}),
        backend=backend,
        errors=[_error(entry) for each in (*history, job) for entry in each.errors],
        worker_ids=[worker for each in (*history, job) for worker in each.worker_ids],
    )
    object.__setattr__(result, "_return_value", job.return_value)
    return result


def requeue_chain(job: BackgroundJob) -> list[BackgroundJob]:
    """Return `job` and the jobs requeued from it in turn, oldest first (one query per requeue).

    A requeued job is reached through its dead letter's reverse relations (the run
    ledger, which owns the letters, sits above the queue).
    """
    chain = [job]
    while chain[-1].status == BackgroundJob.Status.DEAD and len(chain) <= MAX_REQUEUES_FOLLOWED:
        fresh = BackgroundJob.objects.filter(requeued_from__job=chain[-1]).order_by("pk").first()
        if fresh is None:
            break
        chain.append(fresh)
    return chain


def result_id(job: BackgroundJob) -> str:
    """Return the id of the TaskResult whose first job is `job`: its random result id, else (older rows) its id."""
    return str(job.pk) if job.result_id is None else str(job.result_id)


def _task_as_enqueued(task: Task[Any, Any], job: BackgroundJob, *, backend: str) -> Task[Any, Any]:
    # `run_after` is the job's own unless it was "now" at enqueue (the framework's None).
    run_after = None if job.run_after == job.created_at else job.run_after
    if (task.priority, task.queue_name, task.run_after, task.backend) == (job.priority, job.queue, run_after, backend):
        return task
    return _task_copy(task, job.priority, job.queue, run_after, backend)


@lru_cache(maxsize=256)  # the jobs of a batch enqueued alike share one copy (a Task is frozen)
def _task_copy(
    task: Task[Any, Any], priority: int, queue_name: str, run_after: datetime | None, backend: str
) -> Task[Any, Any]:
    # Copied as the job was enqueued, not validated again: a queue since retired from QUEUES (or one this
    # process's TASKS does not list) still names the job's queue, and its result is still read.
    enqueued = copy.copy(task)
    fields = {"priority": priority, "queue_name": queue_name, "run_after": run_after, "backend": backend}
    for name, value in fields.items():
        object.__setattr__(enqueued, name, value)
    return enqueued


def _error(entry: dict[str, str]) -> TaskError:
    return TaskError(exception_class_path=entry["exception_class_path"], traceback=entry["traceback"])
