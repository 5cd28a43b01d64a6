"""Who hears of a job that failed or ended without succeeding: the metrics (jobs.metrics) and, for a task's
job buried now, the `task_finished` receivers (jobs.task_signals). Each hears once the outcome commits.

A successful attempt is told by the runner's handler itself (jobs.metrics.Metered, jobs.taskcall).
"""

from __future__ import annotations

from datetime import datetime

from jobs.metrics import job_attempt_observe
from jobs.models import BackgroundJob
from jobs.registry import get_handler
from jobs.task_results import task_result_of_job
from jobs.task_signals import task_failed_after_commit
from jobs.taskcall import TaskHandler


def attempt_failed(*, job: BackgroundJob, error: BaseException, outcome: str, now: datetime) -> None:
    """Tell of `job`'s attempt, which failed at `now` with `error` and was `retried` or left `dead` (as `job` says)."""
    if job.started_at is not None:
        ran = max((now - job.started_at).total_seconds(), 0.0)
        job_attempt_observe(job=job, started_at=job.started_at, outcome=outcome, ran_seconds=ran)
    if outcome == "dead":
        job_buried(job=job, error=error)


def job_buried(*, job: BackgroundJob, error: BaseException) -> None:
    """Tell the `task_finished` receivers that `job` (dead, as it now stands) failed for good, when it runs a task."""
    handler = get_handler(job.kind)
    if isinstance(handler, TaskHandler):
        result = task_result_of_job(job, task=handler.task, backend=handler.task.backend)
        task_failed_after_commit(result, error=error)
