"""Who hears of a job's attempt and how it ended: the metrics (jobs.metrics) and, for a task's job that ended
SUCCESSFUL or FAILED (buried, or cancelled), the `task_finished` receivers (jobs.task_signals). Each hears once
the outcome commits.

The successes of a group are told together, by one commit callback of the group (jobs.group).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from jobs.marks import Success
from jobs.metrics import job_attempt_observe, job_ended_count, successes_observed
from jobs.models import BackgroundJob
from jobs.registry import find_handler
from jobs.task_results import task_result_of_job
from jobs.task_signals import task_failed_after_commit
from jobs.taskcall import TaskHandler


def attempts_succeeded(successes: Sequence[Success]) -> None:
    """Tell of `successes`, whose marks committed: each attempt counted and timed, each task's receivers told."""
    successes_observed((done.job, done.ran_seconds) for done in successes)
    for done in successes:
        handler = find_handler(done.job.kind)  # found: it ran the job
        if isinstance(handler, TaskHandler):
            handler.succeeded(done.job, return_value=done.return_value, finished_at=done.finished_at)


def attempt_failed(*, job: BackgroundJob, error: BaseException, outcome: str, now: datetime) -> None:
    """Tell of `job`'s attempt, which failed at `now` with `error` and was `retried` or left `dead` (as `job` says)."""
    if job.started_at is not None:
        ran = max((now - job.started_at).total_seconds(), 0.0)
        job_attempt_observe(job=job, started_at=job.started_at, outcome=outcome, ran_seconds=ran)
    if outcome == "dead":
        task_failed(job=job, error=error)


def attempt_lost(*, job: BackgroundJob, error: BaseException, outcome: str) -> None:
    """Tell of `job`'s attempt, lost with its worker or its connection (jobs.recovery), and `retried` or left `dead`.

    It is counted, not timed: it has no end of its own, only the moment it was taken back.
    """
    job_ended_count(kind=job.kind, outcome=outcome)
    if outcome == "dead":
        task_failed(job=job, error=error)


def job_cancelled(*, job: BackgroundJob, error: BaseException) -> None:
    """Tell of `job`, cancelled by an operator (as it now stands), `error` saying by whom and when."""
    job_ended_count(kind=job.kind, outcome="cancelled")
    task_failed(job=job, error=error)


def task_failed(*, job: BackgroundJob, error: BaseException) -> None:
    """Tell the `task_finished` receivers that `job` (dead or cancelled, as it now stands) failed, if it runs a task.

    The task is imported by its module path if this process has not yet (lease recovery
    in a tick, a cancel in the admin): its receivers hear of it wherever its job ended.
    """
    handler = find_handler(job.kind)
    if isinstance(handler, TaskHandler):
        result = task_result_of_job(job, task=handler.task, backend=handler.task.backend)
        task_failed_after_commit(result, error=error)
