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

from jobs.claim import give_back_unstarted
from jobs.context import RunOrigin
from jobs.exceptions import LeaseExpired
from jobs.hooks import job_died
from jobs.metrics import jobs_ended_count
from jobs.models import BackgroundJob
from jobs.observers import job_buried

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
    """Return jobs whose worker died (or stopped) to the queue, or bury those out of attempts.

    A job whose handler never started (`started_at` NULL: claimed, then its worker
    went away) goes back with its attempt given back: nothing was tried, so nothing
    is spent, and a job with one attempt is not dead-lettered for it. A job whose
    handler started spends the attempt: it is retried, or buried when none is left.
    Rows someone holds locked (a worker finishing the job right now) are skipped.
    """
    requeued = released = dead = 0
    for _ in range(settings.MAINTENANCE_PRUNE_MAX_BATCHES):
        with transaction.atomic():
            expired = list(
                BackgroundJob.objects.filter(status=BackgroundJob.Status.RUNNING, lease_expires_at__lt=now)
                .order_by("lease_expires_at")
                .select_for_update(skip_locked=True)[: settings.MAINTENANCE_PRUNE_BATCH_SIZE]
            )
            if not expired:
                break
            unstarted = give_back_unstarted(
                BackgroundJob.objects.filter(pk__in=[job.pk for job in expired if job.started_at is None])
            )
            started = [job for job in expired if job.started_at is not None]
            retry = [job.pk for job in started if job.attempts < job.max_attempts]
            BackgroundJob.objects.filter(pk__in=retry).update(
                status=BackgroundJob.Status.PENDING,
                run_after=now,
                lease_expires_at=None,
                locked_by="",
                last_error="lease expired: the worker stopped before finishing",
            )
            jobs_ended_count([job.kind for job in started if job.pk in retry], outcome="retried")
            for job in started:
                if job.attempts < job.max_attempts:
                    continue
                error = f"lease expired on attempt {job.attempts} of {job.max_attempts}: the worker stopped"
                BackgroundJob.objects.filter(pk=job.pk).update(
                    status=BackgroundJob.Status.DEAD, finished_at=now, lease_expires_at=None, last_error=error
                )
                job.status, job.finished_at, job.last_error = BackgroundJob.Status.DEAD, now, error
                job_died(job=job, error=error, now=now, origin=RunOrigin())
                jobs_ended_count([job.kind], outcome="dead")
                job_buried(job=job, error=LeaseExpired(error))
            requeued += len(retry)
            released += unstarted
            dead += len(started) - len(retry)
    result = {"requeued": requeued, "released": released, "dead": dead}
    if requeued or released or dead:
        logger.warning("expired leases recovered", extra={"action": "lease_recovery", **result})
    return result


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
