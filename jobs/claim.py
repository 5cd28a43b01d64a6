"""A claimed job's life: claimed under a lease, started, run in its own transaction, then succeeded, retried or buried.

Every update after the claim is fenced by the claim (the job's attempt number and
the worker's name), so a worker whose lease expired (and whose job was taken back
or claimed again) commits nothing. Just before its handler starts, the job's lease
is renewed and its start stamped through that fence (jobs.lease): a job whose
claim is gone by then is skipped, its handler never run. Until then `started_at`
is NULL, which is how shutdown and lease recovery tell a job that never started
(its attempt is given back) from one that did.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, QuerySet

from core.errors import one_line
from jobs.backoff import retry_delay
from jobs.context import JobContext, RunOrigin
from jobs.exceptions import LeaseLost
from jobs.hooks import job_died
from jobs.json_array import JSONArrayAppend, JSONArrayDropLast
from jobs.lease import LeaseConnection
from jobs.models import BackgroundJob
from jobs.outcome import errors_with, return_value_stored
from jobs.registry import resolve_handler

logger = logging.getLogger(__name__)

Clock = Callable[[], datetime]
Outcome = Literal["succeeded", "retried", "dead", "lease_lost"]


def claim_batch(*, now: datetime, limit: int, worker: str, queue: str | None = None) -> list[BackgroundJob]:
    """Claim up to `limit` due jobs (of `queue` only, if given) for `worker` under a lease; return them as claimed.

    On PostgreSQL, SKIP LOCKED lets concurrent runners claim disjoint batches; on
    SQLite the transaction takes the write lock at BEGIN (see settings).
    """
    lease = timedelta(seconds=settings.JOBS_LEASE_SECONDS)
    due = BackgroundJob.objects.filter(status=BackgroundJob.Status.PENDING, run_after__lte=now)
    with transaction.atomic():
        jobs = list(
            (due if queue is None else due.filter(queue=queue))
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
            started_at=None,
            worker_ids=JSONArrayAppend("worker_ids", worker),
        )
    for job in jobs:
        job.status = BackgroundJob.Status.RUNNING
        job.attempts += 1
        job.lease_expires_at = now + lease
        job.locked_by = worker
        job.started_at = None
        job.worker_ids = [*job.worker_ids, worker]
    return jobs


# The success update runs once per job, so it is plain SQL (psycopg prepares it
# on the server after a few runs) rather than a queryset built for every job.
_SUCCEED_SQL = (
    f"UPDATE {BackgroundJob._meta.db_table} "  # noqa: S608 (a constant table name, values are parameters)
    "SET status = %s, finished_at = %s, lease_expires_at = NULL, last_error = '', return_value = %s "
    "WHERE id = %s AND status = %s AND attempts = %s AND locked_by = %s"
)
_RETURN_VALUE = BackgroundJob._meta.get_field("return_value")


def run_job(job: BackgroundJob, *, clock: Clock, origin: RunOrigin, lease: LeaseConnection | None = None) -> Outcome:
    """Start one claimed job if its claim still holds, run it in its own transaction and record what happened.

    `lease` is where the start and the handler's heartbeats are written (the
    thread's own connection when none is given).
    """
    lease = lease or LeaseConnection(separate=False)
    started_at = clock()
    if not lease.start(job, now=started_at):
        logger.warning(
            "job lease lost before its handler started: skipped",
            extra={"action": "job_run", "jobId": job.pk, "attempt": job.attempts, **origin.log_fields()},
        )
        return "lease_lost"
    job.started_at = started_at

    def heartbeat() -> bool:
        return lease.renew(job, now=clock())

    context = JobContext(
        job_id=job.pk,
        kind=job.kind,
        tenant=job.tenant,
        payload=job.payload,
        attempt=job.attempts,
        max_attempts=job.max_attempts,
        started_at=started_at,
        _heartbeat=heartbeat,
        job=job,
    )
    handler = resolve_handler(job.kind)
    try:
        if handler is None:
            raise LookupError(f"no handler for kind {job.kind!r}; is its module in JOB_HANDLER_MODULES?")
        with transaction.atomic():
            returned = return_value_stored(handler(context))
            if not _mark_succeeded(job, now=clock(), return_value=returned):
                raise LeaseLost(f"job {job.pk} attempt {job.attempts} lost its lease")
    except LeaseLost:
        logger.warning("job lease lost", extra={"action": "job_run", "jobId": job.pk, **origin.log_fields()})
        return "lease_lost"
    except Exception as exc:  # A handler may raise anything: the job records it and is retried.
        return _record_failure(job, exc=exc, now=clock(), origin=origin)
    logger.debug("job succeeded", extra={"action": "job_run", "jobId": job.pk, "kind": job.kind})
    return "succeeded"


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


def _mark_succeeded(job: BackgroundJob, *, now: datetime, return_value: Any) -> bool:
    stored = _RETURN_VALUE.get_db_prep_save(return_value, connection) if return_value is not None else None
    with connection.cursor() as cursor:
        cursor.execute(
            _SUCCEED_SQL,
            [
                BackgroundJob.Status.SUCCEEDED,
                now,
                stored,
                job.pk,
                BackgroundJob.Status.RUNNING,
                job.attempts,
                job.locked_by,
            ],
        )
        updated: int = cursor.rowcount
        return updated == 1


def _record_failure(job: BackgroundJob, *, exc: Exception, now: datetime, origin: RunOrigin) -> Outcome:
    error, errors = one_line(exc), errors_with(job, exc)
    extra = {"action": "job_run", "jobId": job.pk, "kind": job.kind, "attempt": job.attempts, "error": error}
    fence = _fence(job)
    with transaction.atomic():
        if job.attempts >= job.max_attempts:
            if not fence.update(
                status=BackgroundJob.Status.DEAD,
                finished_at=now,
                lease_expires_at=None,
                last_error=error,
                errors=errors,
            ):
                return "lease_lost"
            job.status, job.finished_at, job.last_error, job.errors = BackgroundJob.Status.DEAD, now, error, errors
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
            errors=errors,
        ):
            return "lease_lost"
    logger.warning("job failed, will retry", extra={**extra, "runAfter": run_after.isoformat()})
    return "retried"


def release(jobs: list[BackgroundJob], *, worker: str) -> int:
    """Give back the claimed-but-unstarted jobs of `jobs` that `worker` holds."""
    return give_back_unstarted(BackgroundJob.objects.filter(pk__in=[job.pk for job in jobs], locked_by=worker))


def release_unstarted(*, worker_prefix: str) -> int:
    """Give back every claimed-but-unstarted job of the workers whose name starts with `worker_prefix`."""
    return give_back_unstarted(BackgroundJob.objects.filter(locked_by__startswith=worker_prefix))


def give_back_unstarted(jobs: QuerySet[BackgroundJob]) -> int:
    """Undo the claim of the running jobs of `jobs` whose handler never started: pending again, attempt not spent."""
    return jobs.filter(status=BackgroundJob.Status.RUNNING, started_at__isnull=True).update(
        status=BackgroundJob.Status.PENDING,
        attempts=F("attempts") - 1,
        lease_expires_at=None,
        locked_by="",
        worker_ids=JSONArrayDropLast("worker_ids"),
    )


def ready_backlog(*, now: datetime) -> int:
    """Return how many pending jobs are due now."""
    return BackgroundJob.objects.filter(status=BackgroundJob.Status.PENDING, run_after__lte=now).count()
