"""Operator actions on queued jobs: retry a pending job now, or cancel it. Pending jobs only.

A running job belongs to its worker (its lease fences every update), and a finished
job is history: both are skipped with their status as the reason. A row a worker
holds locked at that moment (claiming it, or finishing it) is skipped too, never
waited for: an admin request must not hang on a handler's transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db import transaction

from core.actions import ActionReport
from core.errors import one_line
from jobs.exceptions import JobCancelled
from jobs.models import BackgroundJob
from jobs.observers import job_cancelled
from jobs.outcome import errors_with

logger = logging.getLogger(__name__)

GONE = "deleted meanwhile"
LOCKED = "locked by a worker at this moment (try again)"


@transaction.atomic
def job_retry_now(*, job_ids: Sequence[int], now: datetime) -> ActionReport:
    """Make each pending job of `job_ids` due now (a job waiting out its retry backoff runs next)."""
    return _update_pending(job_ids, fields={"run_after": now}, action="job_retry_now")


@transaction.atomic
def job_cancel(*, job_ids: Sequence[int], by: str, now: datetime) -> ActionReport:
    """Cancel each pending job of `job_ids`: it never runs, and its dedupe key is free again.

    The cancellation is recorded on the job as its last error, a JobCancelled naming
    `by` (the operator) and `now`: the job's task result reads it back, and a task's
    `task_finished` receivers hear of it once this commits (jobs.observers).
    """
    cancelled = JobCancelled("cancelled by an operator")
    cancelled.add_note(f"cancelled by {by or 'an unnamed operator'} at {now.isoformat(timespec='milliseconds')}")
    report = _update_pending(
        job_ids,
        fields={"status": BackgroundJob.Status.CANCELLED, "finished_at": now, "last_error": one_line(cancelled)},
        action="job_cancel",
    )
    for job in BackgroundJob.objects.filter(pk__in=report.done):
        job.errors = errors_with(job, cancelled)
        BackgroundJob.objects.filter(pk=job.pk).update(errors=job.errors)
        job_cancelled(job=job, error=cancelled)
    return report


def _update_pending(job_ids: Sequence[int], *, fields: dict[str, Any], action: str) -> ActionReport:
    ids = sorted(set(job_ids))
    # Lock the rows so a runner cannot claim one between our read and our update
    # (its claim skips locked rows). Rows locked by someone else are skipped; an
    # unlocked read then says why each one was left out.
    locked = dict(
        BackgroundJob.objects.select_for_update(skip_locked=True)
        .filter(pk__in=ids)
        .order_by("pk")
        .values_list("pk", "status")
    )
    others = dict(BackgroundJob.objects.filter(pk__in=set(ids) - set(locked)).values_list("pk", "status"))
    report = ActionReport()
    for pk in ids:
        status = locked.get(pk, others.get(pk))
        if status is None:
            report.skip(pk, GONE)
        elif status != BackgroundJob.Status.PENDING:
            report.skip(pk, f"not pending ({status})")
        elif pk not in locked:
            report.skip(pk, LOCKED)
        else:
            report.done.append(pk)
    BackgroundJob.objects.filter(pk__in=report.done).update(**fields)
    logger.info(
        "pending jobs updated", extra={"action": action, "jobs": len(report.done), "skipped": report.skipped_count}
    )
    return report
