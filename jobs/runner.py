"""The runner: claim due jobs under a lease, run each in its own transaction, retry or bury."""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from core.errors import one_line
from jobs.backoff import retry_delay
from jobs.context import JobContext, RunOrigin
from jobs.exceptions import LeaseLost
from jobs.hooks import job_died
from jobs.models import BackgroundJob
from jobs.registry import get_handler

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
SUMMED = ("claimed", "succeeded", "retried", "dead", "leaseLost", "durationMs")
Outcome = Literal["succeeded", "retried", "dead", "lease_lost"]


@dataclass
class RunSummary:
    claimed: int = 0
    succeeded: int = 0
    retried: int = 0
    dead: int = 0
    lease_lost: int = 0
    duration_ms: int = 0
    budget_exhausted: bool = False
    remaining_backlog: int = 0

    def as_json(self) -> dict[str, Any]:
        """Return the summary as the JSON object the contract names."""
        return {
            "claimed": self.claimed,
            "succeeded": self.succeeded,
            "retried": self.retried,
            "dead": self.dead,
            "leaseLost": self.lease_lost,
            "durationMs": self.duration_ms,
            "budgetExhausted": self.budget_exhausted,
            "remainingBacklog": self.remaining_backlog,
        }


def merge_summaries(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Return the summary of two consecutive drains (counts add up; the backlog is the later one)."""
    merged = {name: first[name] + second[name] for name in SUMMED}
    merged["budgetExhausted"] = second["budgetExhausted"]
    merged["remainingBacklog"] = second["remainingBacklog"]
    return merged


def worker_name() -> str:
    """Return a name unique to this runner invocation: host, process and a random tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def jobs_run(
    *,
    budget_seconds: float,
    batch_size: int | None = None,
    max_jobs: int | None = None,
    concurrency: int | None = None,
    origin: RunOrigin | None = None,
    clock: Clock = timezone.now,
) -> RunSummary:
    """Drain due jobs until none are left, `budget_seconds` is spent or `max_jobs` ran.

    With `concurrency` (default JOBS_CONCURRENCY) above 1, that many threads drain
    at once, each with its own database connection: one job's commit then overlaps
    another's handler. Jobs claimed but not started when the budget runs out are
    released at once, not left to wait for their lease. Running out of budget or of
    `max_jobs` both count as `budgetExhausted`.
    """
    started = time.monotonic()
    drain = _Drain(
        deadline=started + budget_seconds,
        batch_size=batch_size or settings.JOBS_BATCH_SIZE,
        quota=_Quota(max_jobs),
        origin=origin or RunOrigin(),
        clock=clock,
    )
    lanes = concurrency or settings.JOBS_CONCURRENCY
    if lanes == 1:
        summary = drain.run()
    else:
        with ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="jobs-runner") as pool:
            summary = _combine(list(pool.map(lambda _: drain.run_in_thread(), range(lanes))))
    summary.remaining_backlog = ready_backlog(now=clock())
    summary.duration_ms = round((time.monotonic() - started) * 1000)
    logger.info(
        "jobs drained",
        extra={"action": "jobs_run", "concurrency": lanes, **summary.as_json(), **drain.origin.log_fields()},
    )
    return summary


class _Quota:
    """How many more jobs the drain may claim (max_jobs), shared by its threads."""

    def __init__(self, limit: int | None) -> None:
        self._left = limit
        self._lock = threading.Lock()

    def take(self, wanted: int) -> int:
        """Reserve up to `wanted` claims and return how many were granted."""
        with self._lock:
            if self._left is None:
                return wanted
            granted = min(wanted, self._left)
            self._left -= granted
            return granted

    def give_back(self, unused: int) -> None:
        with self._lock:
            if self._left is not None:
                self._left += unused


@dataclass
class _Drain:
    deadline: float
    batch_size: int
    quota: _Quota
    origin: RunOrigin
    clock: Clock

    def run(self) -> RunSummary:
        """Claim and run batches until the queue, the budget or the quota is exhausted."""
        worker = worker_name()
        summary = RunSummary()
        while not summary.budget_exhausted:
            if time.monotonic() >= self.deadline:
                summary.budget_exhausted = True
                break
            allowed = self.quota.take(self.batch_size)
            if allowed == 0:
                summary.budget_exhausted = True
                break
            batch = claim_batch(now=self.clock(), limit=allowed, worker=worker)
            self.quota.give_back(allowed - len(batch))
            if not batch:
                break
            for index, job in enumerate(batch):
                if time.monotonic() >= self.deadline:
                    release(batch[index:], worker=worker)
                    summary.budget_exhausted = True
                    break
                outcome = run_job(job, clock=self.clock, origin=self.origin)
                summary.claimed += 1
                setattr(summary, outcome, getattr(summary, outcome) + 1)
        return summary

    def run_in_thread(self) -> RunSummary:
        try:
            return self.run()
        finally:
            connection.close()  # each thread has its own connection: do not leak it


def _combine(parts: list[RunSummary]) -> RunSummary:
    summary = RunSummary(budget_exhausted=any(part.budget_exhausted for part in parts))
    for name in ("claimed", "succeeded", "retried", "dead", "lease_lost"):
        setattr(summary, name, sum(getattr(part, name) for part in parts))
    return summary


def claim_batch(*, now: datetime, limit: int, worker: str) -> list[BackgroundJob]:
    """Claim up to `limit` due jobs for `worker` under a lease; return them as claimed.

    On PostgreSQL, SKIP LOCKED lets concurrent runners claim disjoint batches; on
    SQLite the transaction takes the write lock at BEGIN (see settings).
    """
    lease = timedelta(seconds=settings.JOBS_LEASE_SECONDS)
    with transaction.atomic():
        jobs = list(
            BackgroundJob.objects.filter(status=BackgroundJob.Status.PENDING, run_after__lte=now)
            .order_by("-priority", "run_after", "id")
            .select_for_update(skip_locked=True)[:limit]
        )
        if not jobs:
            return []
        BackgroundJob.objects.filter(pk__in=[job.pk for job in jobs]).update(
            status=BackgroundJob.Status.RUNNING,
            attempts=F("attempts") + 1,
            lease_expires_at=now + lease,
            locked_by=worker,
            started_at=now,
        )
    for job in jobs:
        job.status = BackgroundJob.Status.RUNNING
        job.attempts += 1
        job.lease_expires_at = now + lease
        job.locked_by = worker
        job.started_at = now
    return jobs


# The success update runs once per job, so it is plain SQL (psycopg prepares it
# on the server after a few runs) rather than a queryset built for every job.
_SUCCEED_SQL = (
    f"UPDATE {BackgroundJob._meta.db_table} "  # noqa: S608 (a constant table name, values are parameters)
    "SET status = %s, finished_at = %s, lease_expires_at = NULL, last_error = '' "
    "WHERE id = %s AND status = %s AND attempts = %s"
)


def run_job(job: BackgroundJob, *, clock: Clock, origin: RunOrigin) -> Outcome:
    """Run one claimed job in its own transaction and record what happened."""
    lease = timedelta(seconds=settings.JOBS_LEASE_SECONDS)

    def heartbeat() -> bool:
        return _fence(job).update(lease_expires_at=clock() + lease) == 1

    context = JobContext(
        job_id=job.pk,
        kind=job.kind,
        tenant=job.tenant,
        payload=job.payload,
        attempt=job.attempts,
        max_attempts=job.max_attempts,
        started_at=job.started_at or clock(),
        _heartbeat=heartbeat,
    )
    handler = get_handler(job.kind)
    try:
        if handler is None:
            raise LookupError(f"no handler for kind {job.kind!r}; is its module in JOB_HANDLER_MODULES?")
        with transaction.atomic():
            handler(context)
            if not _mark_succeeded(job, now=clock()):
                raise LeaseLost(f"job {job.pk} attempt {job.attempts} lost its lease")
    except LeaseLost:
        logger.warning("job lease lost", extra={"action": "job_run", "jobId": job.pk, **origin.log_fields()})
        return "lease_lost"
    except Exception as exc:  # A handler may raise anything: the job records it and is retried.
        return _record_failure(job, error=one_line(exc), now=clock(), origin=origin)
    logger.debug("job succeeded", extra={"action": "job_run", "jobId": job.pk, "kind": job.kind})
    return "succeeded"


def _fence(job: BackgroundJob) -> QuerySet[BackgroundJob]:
    """Return the job's row as long as this claim holds it.

    The attempt number fences the claim: if the lease is lost and the job is
    claimed again, the attempt count moves on and no update through it matches.
    """
    return BackgroundJob.objects.filter(pk=job.pk, status=BackgroundJob.Status.RUNNING, attempts=job.attempts)


def _mark_succeeded(job: BackgroundJob, *, now: datetime) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            _SUCCEED_SQL,
            [BackgroundJob.Status.SUCCEEDED, now, job.pk, BackgroundJob.Status.RUNNING, job.attempts],
        )
        updated: int = cursor.rowcount
        return updated == 1


def _record_failure(job: BackgroundJob, *, error: str, now: datetime, origin: RunOrigin) -> Outcome:
    extra = {"action": "job_run", "jobId": job.pk, "kind": job.kind, "attempt": job.attempts, "error": error}
    fence = _fence(job)
    with transaction.atomic():
        if job.attempts >= job.max_attempts:
            if not fence.update(
                status=BackgroundJob.Status.DEAD, finished_at=now, lease_expires_at=None, last_error=error
            ):
                return "lease_lost"
            job.status, job.finished_at, job.last_error = BackgroundJob.Status.DEAD, now, error
            job_died(job=job, error=error, now=now, origin=origin)
            logger.error("job dead-lettered", extra={**extra, **origin.log_fields()})
            return "dead"
        run_after = now + retry_delay(
            job_id=job.pk,
            attempt=job.attempts,
            base_seconds=settings.JOBS_RETRY_BASE_SECONDS,
            max_seconds=settings.JOBS_RETRY_MAX_SECONDS,
        )
        if not fence.update(
            status=BackgroundJob.Status.PENDING,
            run_after=run_after,
            lease_expires_at=None,
            locked_by="",
            last_error=error,
        ):
            return "lease_lost"
    logger.warning("job failed, will retry", extra={**extra, "runAfter": run_after.isoformat()})
    return "retried"


def release(jobs: list[BackgroundJob], *, worker: str) -> int:
    """Give claimed-but-unstarted jobs back to the queue, undoing their claim."""
    return BackgroundJob.objects.filter(
        pk__in=[job.pk for job in jobs], status=BackgroundJob.Status.RUNNING, locked_by=worker
    ).update(
        status=BackgroundJob.Status.PENDING,
        attempts=F("attempts") - 1,
        lease_expires_at=None,
        locked_by="",
    )


def ready_backlog(*, now: datetime) -> int:
    """Return how many pending jobs are due now."""
    return BackgroundJob.objects.filter(status=BackgroundJob.Status.PENDING, run_after__lte=now).count()
