"""A claimed job's life: claimed under a lease, started, run (jobs.group), then succeeded, retried or buried.

Every update after the claim is fenced by the claim (the job's attempt number and
the worker's name), so a worker whose lease expired (and whose job was taken back
or claimed again) commits nothing. Just before its handler starts, the job's lease
is renewed and its start stamped through that fence (jobs.lease): a job whose
claim is gone by then is skipped, its handler never run. Until then `started_at`
is NULL, which is how shutdown and lease recovery tell a job that never started
(its attempt is given back) from one that did.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q, QuerySet

from core.errors import one_line
from jobs.backoff import retry_delay
from jobs.context import RunOrigin
from jobs.exceptions import retriable
from jobs.hooks import job_died
from jobs.json_array import JSONArrayAppend, JSONArrayDropLast
from jobs.models import BackgroundJob
from jobs.observers import attempt_failed
from jobs.outcome import errors_with
from jobs.retry import kind_policy

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Outcome = Literal["succeeded", "retried", "dead", "lease_lost"]


def claim_batch(*, now: datetime, limit: int, worker: str, queue: str | None = None) -> list[BackgroundJob]:
    """Claim up to `limit` due jobs (of `queue` only, if given) for `worker` under a lease; return them as claimed.

    On PostgreSQL, SKIP LOCKED lets concurrent runners claim disjoint batches, in
    one statement (one round trip, its own transaction); on SQLite the transaction
    takes the write lock at BEGIN (see settings).
    """
    expires = now + timedelta(seconds=settings.JOBS_LEASE_SECONDS)
    if connection.vendor == "postgresql":
        params = [PENDING, now, *([] if queue is None else [queue]), limit, RUNNING, expires, worker, worker]
        claimed = list(BackgroundJob.objects.raw(_CLAIM_SQL[queue is not None], params))
        return sorted(claimed, key=lambda job: (-job.priority, job.run_after, job.pk))
    due = BackgroundJob.objects.filter(status=PENDING, run_after__lte=now)
    with transaction.atomic():
        jobs = list(
            (due if queue is None else due.filter(queue=queue))
            .order_by("-priority", "run_after", "id")
            .select_for_update(skip_locked=True)[:limit]
        )
        if not jobs:
            return []
        BackgroundJob.objects.filter(pk__in=[job.pk for job in jobs]).update(
            status=RUNNING,
            attempts=F("attempts") + 1,
            lease_expires_at=expires,
            locked_by=worker,
            started_at=None,
            worker_ids=JSONArrayAppend("worker_ids", worker),
        )
    for job in jobs:
        job.status, job.attempts, job.lease_expires_at, job.locked_by = RUNNING, job.attempts + 1, expires, worker
        job.started_at = None
        job.worker_ids = [*job.worker_ids, worker]
    return jobs


# The claim on PostgreSQL: the due jobs locked (skipping those another runner holds) and
# claimed in one statement that returns them as claimed, with or without a queue filter.
RUNNING, PENDING = BackgroundJob.Status.RUNNING, BackgroundJob.Status.PENDING
_TABLE = BackgroundJob._meta.db_table
_CLAIM_SQL = {
    queued: f"WITH due AS MATERIALIZED (SELECT id FROM {_TABLE} "  # noqa: S608 (constants only)
    f"WHERE status = %s AND run_after <= %s{' AND queue = %s' if queued else ''} "
    "ORDER BY priority DESC, run_after, id LIMIT %s FOR UPDATE SKIP LOCKED) "
    f"UPDATE {_TABLE} AS job SET status = %s, attempts = job.attempts + 1, lease_expires_at = %s, locked_by = %s, "
    "started_at = NULL, worker_ids = job.worker_ids || jsonb_build_array(%s::text) FROM due WHERE job.id = due.id "
    f"RETURNING {', '.join(f'job.{field.column}' for field in BackgroundJob._meta.concrete_fields)}"
    for queued in (False, True)
}


def _fence(job: BackgroundJob) -> QuerySet[BackgroundJob]:
    """Return the job's row as long as this claim holds it.

    The attempt number and the worker's name fence the claim: if the lease is lost
    and the job is claimed again, by this worker or another, no update through it
    matches (an attempt given back and claimed again has the same number, but
    another worker's name; a worker name is never reused).
    """
    return BackgroundJob.objects.filter(
        pk=job.pk, status=BackgroundJob.Status.RUNNING, attempts=job.attempts, locked_by=job.locked_by
    )


def record_failure(job: BackgroundJob, *, exc: BaseException, now: datetime, origin: RunOrigin) -> Outcome:
    """Record a failed attempt through the claim: retry on its kind's backoff, or bury the job and tell the hook.

    A job is buried after its last attempt, or at once when no retry could mend `exc`
    (jobs.exceptions.not_retriable).

    The row is written, not `job`, which stays as claimed (a rolled-back group runs it again: jobs.group).
    """
    error, errors = one_line(exc), errors_with(job, exc)
    extra = {"action": "job_run", "jobId": job.pk, "kind": job.kind, "attempt": job.attempts, "error": error}
    fence = _fence(job)
    with transaction.atomic():
        if job.attempts >= job.max_attempts or not retriable(exc):
            dead = bury(job, row=fence, error=error, errors=errors, now=now, origin=origin)
            if dead is None:
                return "lease_lost"
            attempt_failed(job=dead, error=exc, outcome="dead", now=now)
            logger.error("job dead-lettered", extra={**extra, "retriable": retriable(exc), **origin.log_fields()})
            return "dead"
        policy = kind_policy(job.kind)
        run_after = now + retry_delay(
            job_id=job.pk, attempt=job.attempts, base_seconds=policy.base_seconds, max_seconds=policy.max_seconds
        )
        if not retry(fence, run_after=run_after, error=error, errors=errors):
            return "lease_lost"
    attempt_failed(job=job, error=exc, outcome="retried", now=now)
    logger.warning("job failed, will retry", extra={**extra, "runAfter": run_after.isoformat()})
    return "retried"


def retry(row: QuerySet[BackgroundJob], *, run_after: datetime, error: str, errors: list[dict[str, Any]]) -> bool:
    """Make the job of `row` pending again, due at `run_after`, with its attempt's error; False if none matched."""
    return bool(
        row.update(
            status=BackgroundJob.Status.PENDING,
            run_after=run_after,
            lease_expires_at=None,
            locked_by="",
            last_error=error,
            errors=errors,
        )
    )


def bury(
    job: BackgroundJob,
    *,
    row: QuerySet[BackgroundJob],
    error: str,
    errors: list[dict[str, Any]],
    now: datetime,
    origin: RunOrigin,
) -> BackgroundJob | None:
    """Mark the job of `row` dead with its last attempt's error and tell the job-died hook.

    Return the job as it now stands (a copy of `job`, which stays as claimed), or None if no row matched.
    """
    if not row.update(
        status=BackgroundJob.Status.DEAD, finished_at=now, lease_expires_at=None, last_error=error, errors=errors
    ):
        return None
    # `job` stays as claimed: the caller's transaction may still roll this back (jobs.group then runs the job
    # again), and the next failure must not find this one's error on it. The hook is told of a copy.
    dead = copy.copy(job)
    dead.status, dead.finished_at, dead.last_error, dead.errors = BackgroundJob.Status.DEAD, now, error, errors
    job_died(job=dead, error=error, now=now, origin=origin)
    return dead


def release(jobs: list[BackgroundJob], *, worker: str) -> int:
    """Give back the claimed-but-unstarted jobs of `jobs` that `worker` holds."""
    return give_back_unstarted(BackgroundJob.objects.filter(pk__in=[job.pk for job in jobs], locked_by=worker))


def release_unstarted(*, worker_prefix: str) -> int:
    """Give back every claimed-but-unstarted job of the workers whose name starts with `worker_prefix`."""
    return give_back_unstarted(BackgroundJob.objects.filter(locked_by__startswith=worker_prefix))


def give_back_unstarted(jobs: QuerySet[BackgroundJob]) -> int:
    """Undo the claim of the running jobs of `jobs` whose handler never started: pending again, attempt not spent."""
    return give_back(jobs.filter(started_at__isnull=True))


def give_back_undone(jobs: list[BackgroundJob]) -> int:
    """Undo the claims of `jobs`, whose attempt left nothing (their group was rolled back): pending, attempt not spent.

    Each is fenced by its claim, so a job taken back meanwhile is left as it is.
    """
    claims = Q()
    for job in jobs:
        claims |= Q(pk=job.pk, attempts=job.attempts, locked_by=job.locked_by)
    return give_back(BackgroundJob.objects.filter(claims)) if jobs else 0


def give_back(jobs: QuerySet[BackgroundJob]) -> int:
    """Undo the claims of the running jobs of `jobs`, none started (or its attempt left nothing): attempt not spent."""
    return jobs.filter(status=BackgroundJob.Status.RUNNING).update(
        status=BackgroundJob.Status.PENDING,
        attempts=F("attempts") - 1,
        lease_expires_at=None,
        locked_by="",
        started_at=None,
        worker_ids=JSONArrayDropLast("worker_ids"),
    )


def ready_backlog(*, now: datetime, queue: str | None = None) -> int:
    """Return how many pending jobs are due now (of `queue` only, when given)."""
    due = BackgroundJob.objects.filter(status=BackgroundJob.Status.PENDING, run_after__lte=now)
    return (due if queue is None else due.filter(queue=queue)).count()
