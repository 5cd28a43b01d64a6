"""Maintenance: recover lost leases, prune by retention, report queue health, run extra tasks."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from importlib import import_module
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import models, transaction

from core.errors import one_line
from dispatch.models import DispatchWindow
from jobs.health import queue_health_measure, queue_health_snapshot_create
from jobs.models import BackgroundJob, QueueHealthSnapshot
from runs.models import DeadLetter, FunctionRun
from runs.services import dead_letter_for_job
from runs.status import status_write

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


def load_maintenance_modules() -> None:
    """Import every module in settings.MAINTENANCE_TASK_MODULES so its tasks register."""
    for path in settings.MAINTENANCE_TASK_MODULES:
        try:
            import_module(path)
        except ImportError as exc:
            raise ImproperlyConfigured(
                f"MAINTENANCE_TASK_MODULES lists {path!r}, which cannot be imported: {exc}"
            ) from exc


def run_maintenance(*, now: datetime) -> dict[str, Any]:
    """Run every maintenance task once and return a compact JSON summary."""
    started = time.monotonic()
    summary: dict[str, Any] = {
        "recovered": recover_expired_leases(now=now),
        "pruned": prune(now=now),
        "health": queue_health(now=now),
    }
    extra: dict[str, Any] = {}
    for name, task in sorted(_tasks.items()):
        try:
            extra[name] = task(now=now)
        except Exception as exc:  # One broken project task must not stop the others.
            logger.exception("maintenance task failed", extra={"action": "maintenance", "task": name})
            extra[name] = {"error": one_line(exc)}
    if extra:
        summary["tasks"] = extra
    summary["durationMs"] = round((time.monotonic() - started) * 1000)
    logger.info("maintenance finished", extra={"action": "maintenance", **summary})
    return summary


def recover_expired_leases(*, now: datetime) -> dict[str, int]:
    """Return jobs whose worker died to the queue, or bury those out of attempts.

    Rows a live worker holds locked (it is heartbeating inside its transaction)
    are skipped, so only truly abandoned jobs are recovered.
    """
    requeued = dead = 0
    for _ in range(settings.MAINTENANCE_PRUNE_MAX_BATCHES):
        with transaction.atomic():
            expired = list(
                BackgroundJob.objects.filter(status=BackgroundJob.Status.RUNNING, lease_expires_at__lt=now)
                .order_by("lease_expires_at")
                .select_for_update(skip_locked=True)[: settings.MAINTENANCE_PRUNE_BATCH_SIZE]
            )
            if not expired:
                break
            retry = [job for job in expired if job.attempts < job.max_attempts]
            BackgroundJob.objects.filter(pk__in=[job.pk for job in retry]).update(
                status=BackgroundJob.Status.PENDING,
                run_after=now,
                lease_expires_at=None,
                locked_by="",
                last_error="lease expired: the worker stopped before finishing",
            )
            for job in expired:
                if job.attempts < job.max_attempts:
                    continue
                error = f"lease expired on attempt {job.attempts} of {job.max_attempts}: the worker stopped"
                BackgroundJob.objects.filter(pk=job.pk).update(
                    status=BackgroundJob.Status.DEAD, finished_at=now, lease_expires_at=None, last_error=error
                )
                job.status, job.finished_at, job.last_error = BackgroundJob.Status.DEAD, now, error
                dead_letter_for_job(job=job, error=error, now=now)
            requeued += len(retry)
            dead += len(expired) - len(retry)
    if requeued or dead:
        logger.warning(
            "expired leases recovered", extra={"action": "lease_recovery", "requeued": requeued, "dead": dead}
        )
    return {"requeued": requeued, "dead": dead}


def prune(*, now: datetime) -> dict[str, int]:
    """Delete history past its retention, in bounded batches; never an unresolved dead letter."""
    jobs_cutoff = now - timedelta(days=settings.JOBS_RETENTION_DAYS)
    runs_cutoff = now - timedelta(days=settings.RUNS_RETENTION_DAYS)
    windows_cutoff = now - timedelta(days=settings.WINDOWS_RETENTION_DAYS)
    finished = [BackgroundJob.Status.SUCCEEDED, BackgroundJob.Status.CANCELLED, BackgroundJob.Status.DEAD]
    return {
        # Resolved letters first: that is what lets their job or run go next.
        "deadLetters": _delete_in_batches(
            DeadLetter.objects.filter(resolved_at__isnull=False, resolved_at__lt=runs_cutoff)
        ),
        "jobs": _delete_in_batches(
            BackgroundJob.objects.filter(status__in=finished, finished_at__lt=jobs_cutoff, dead_letter__isnull=True)
        ),
        "runs": _delete_in_batches(
            FunctionRun.objects.filter(started_at__lt=runs_cutoff, dead_letter__isnull=True).exclude(
                status=FunctionRun.Status.RUNNING
            )
        ),
        "windows": _delete_in_batches(DispatchWindow.objects.filter(created_at__lt=windows_cutoff)),
        # Snapshots are kept as long as windows: the report compares one with the other.
        "queueHealthSnapshots": _delete_in_batches(QueueHealthSnapshot.objects.filter(taken_at__lt=windows_cutoff)),
    }


def _delete_in_batches(queryset: models.QuerySet[Any]) -> int:
    deleted = 0
    label = queryset.model._meta.label
    for _ in range(settings.MAINTENANCE_PRUNE_MAX_BATCHES):
        ids = list(queryset.values_list("pk", flat=True)[: settings.MAINTENANCE_PRUNE_BATCH_SIZE])
        if not ids:
            break
        _, per_model = queryset.model._default_manager.filter(pk__in=ids).delete()
        deleted += per_model.get(label, 0)
    return deleted


def queue_health(*, now: datetime) -> dict[str, Any]:
    """Return backlog, lag and unresolved dead letters; store a snapshot, log them and write a status blob."""
    measured = queue_health_measure(now=now)
    queue_health_snapshot_create(health=measured, now=now)
    health = measured.as_json()
    logger.info("queue health", extra={"action": "queue_health", **health})
    status_write(scope="global", job_name="queue-health", now=now, status="ok", output=health)
    return health
