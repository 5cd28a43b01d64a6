"""The queue's maintenance pieces: the task registry, lease recovery, pruning finished jobs.

runs.maintenance composes them with the run ledger's pruning and the queue-health
report into the maintenance a tick runs.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from importlib import import_module
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models, transaction
from django.db.models import Min

from jobs.models import BackgroundJob
from jobs.recovery import TakenBack, jobs_take_back, lease_expired

logger = logging.getLogger(__name__)

MaintenanceTask = Callable[..., dict[str, Any]]
_tasks: dict[str, MaintenanceTask] = {}


def maintenance_task(name: str) -> Callable[[MaintenanceTask], MaintenanceTask]:
    """Register the decorated function, called as task(now=...), as an extra maintenance task."""

    def register(task: MaintenanceTask) -> MaintenanceTask:
        existing = _tasks.get(name)
        if existing is not None and existing is not task:
            raise ImproperlyConfigured(f"maintenance task {name!r} is registered twice")
        _tasks[name] = task
        return task

    return register


def maintenance_tasks() -> list[tuple[str, MaintenanceTask]]:
    """Return the registered extra tasks by name, sorted."""
    return sorted(_tasks.items())


def load_maintenance_modules() -> None:
    """Import every module in settings.MAINTENANCE_TASK_MODULES so its tasks register."""
    for path in settings.MAINTENANCE_TASK_MODULES:
        try:
            import_module(path)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"MAINTENANCE_TASK_MODULES lists {path!r}, which cannot be imported: {exc}"
            ) from exc


def recover_expired_leases(*, now: datetime) -> dict[str, int]:
    """Take back the jobs of workers that died (or stopped) once their lease has expired (jobs.recovery).

    A job whose handler never started (`started_at` NULL: claimed, then its worker
    went away) goes back with its attempt given back: nothing was tried, so nothing
    is spent, and a job with one attempt is not dead-lettered for it. A job whose
    handler started spends the attempt, recorded as a LeaseExpired error: it is
    retried, or buried when none is left. Rows someone holds locked (a worker
    finishing the job right now) are skipped.
    """
    total = TakenBack()
    for _ in range(settings.MAINTENANCE_PRUNE_MAX_BATCHES):
        with transaction.atomic():
            expired = list(
                BackgroundJob.objects.filter(status=BackgroundJob.Status.RUNNING, lease_expires_at__lt=now)
                .order_by("lease_expires_at")
                .select_for_update(skip_locked=True)[: settings.MAINTENANCE_PRUNE_BATCH_SIZE]
            )
            if not expired:
                break
            taken = jobs_take_back(
                expired,
                started=lambda job: job.started_at is not None,
                lost=lambda job: lease_expired(job, now=now),
                now=now,
            )
        total.add(taken)
    result = total.as_json()
    if any(result.values()):
        logger.warning("expired leases recovered", extra={"action": "lease_recovery", **result})
    return result


def next_lease_expiry() -> datetime | None:
    """Return the earliest lease of the running jobs (one already past, if a recovery skipped it), or None."""
    earliest: datetime | None = BackgroundJob.objects.filter(status=BackgroundJob.Status.RUNNING).aggregate(
        earliest=Min("lease_expires_at")
    )["earliest"]
    return earliest


def prune_finished_jobs(*, now: datetime) -> int:
    """Delete finished jobs past JOBS_RETENTION_DAYS, in bounded batches; never one with a dead letter."""
    cutoff = now - timedelta(days=settings.JOBS_RETENTION_DAYS)
    finished = [BackgroundJob.Status.SUCCEEDED, BackgroundJob.Status.CANCELLED, BackgroundJob.Status.DEAD]
    # `dead_letter` is the run ledger's reverse relation: a job keeps its letter's origin.
    return delete_in_batches(
        BackgroundJob.objects.filter(status__in=finished, finished_at__lt=cutoff, dead_letter__isnull=True)
    )


def delete_in_batches(queryset: models.QuerySet[Any]) -> int:
    """Delete the rows of `queryset` in at most MAINTENANCE_PRUNE_MAX_BATCHES batches; return how many went."""
    deleted = 0
    label = queryset.model._meta.label
    for _ in range(settings.MAINTENANCE_PRUNE_MAX_BATCHES):
        ids = list(queryset.values_list("pk", flat=True)[: settings.MAINTENANCE_PRUNE_BATCH_SIZE])
        if not ids:
            break
        _, per_model = queryset.model._default_manager.filter(pk__in=ids).delete()
        deleted += per_model.get(label, 0)
    return deleted
