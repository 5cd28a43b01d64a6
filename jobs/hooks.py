"""What the queue tells the layers above it (hooks registered at start-up): a job died; a worker's chore is due.

The queue knows nothing of dead letters (the run ledger, above it, owns them), yet a
job that dies must never go without its letter. So the runner and lease recovery
call `job_died` inside the transaction that marks the job dead, and runs registers
its dead-letter writer in `RunsConfig.ready()`. With no writer registered the call
raises, and the job's death rolls back with it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

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


class WorkerChore(Protocol):
    def __call__(self, *, now: datetime) -> dict[str, Any]: ...


# A standing worker (`run_jobs --loop`) has upkeep of the layers above the queue to do
# every few minutes (jobs.chores): runs registers the reconciler here.
_worker_chore: Hook[WorkerChore] = Hook("worker chore (the reconciler)", provider="runs")


def worker_chore_register(chore: WorkerChore) -> None:
    """Have standing workers run `chore` every WORKER_CHORE_INTERVAL_SECONDS (once, at start-up)."""
    _worker_chore.register(chore)


def worker_chore(*, now: datetime) -> dict[str, Any]:
    """Run the registered worker chore and return its summary."""
    return _worker_chore.target()(now=now)
