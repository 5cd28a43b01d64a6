"""What the queue tells the layers above it: a job died, a job is due now (hooks registered at start-up).

The queue knows nothing of dead letters (the run ledger, above it, owns them), yet a
job that dies must never go without its letter. So the runner and lease recovery
call `job_died` inside the transaction that marks the job dead, and runs registers
its dead-letter writer in `RunsConfig.ready()`. With no writer registered the call
raises, and the job's death rolls back with it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from core.hooks import Hook
from jobs.context import RunOrigin
from jobs.models import BackgroundJob


class JobDiedHook(Protocol):
    def __call__(self, *, job: BackgroundJob, error: str, now: datetime, origin: RunOrigin) -> object: ...


_job_died: Hook[JobDiedHook] = Hook("job-died hook (the dead-letter writer)", provider="runs")


def job_died_hook_register(hook: JobDiedHook) -> None:
    """Have `hook` told of every job that dies (once, at start-up)."""
    _job_died.register(hook)


def job_died(*, job: BackgroundJob, error: str, now: datetime, origin: RunOrigin) -> None:
    """Tell the registered hook that `job` died (inside the transaction that marks it dead)."""
    _job_died.target()(job=job, error=error, now=now, origin=origin)


class JobsDueHook(Protocol):
    def __call__(self, *, now: datetime) -> object: ...


_jobs_due: Hook[JobsDueHook] = Hook("jobs-due hook (the drain requester)", provider="dispatch")


def jobs_due_hook_register(hook: JobsDueHook) -> None:
    """Have `hook` told, inside the enqueuing transaction, of every job enqueued to run now (once, at start-up)."""
    _jobs_due.register(hook)


def jobs_due(*, now: datetime) -> None:
    """Tell the registered hook that a job enqueued at `now` is due now (dispatch mode asks Inngest for a drain)."""
    _jobs_due.target()(now=now)
