"""Maintenance, composed: recover lost leases, reconcile, prune by retention, report queue health, run extra tasks.

The queue's own pieces (lease recovery, pruning finished jobs, the registry of the
project's tasks) live in jobs.maintenance; this module adds the run ledger's and
dispatch's history, and the dead letters the queue-health report counts.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from core.errors import one_line
from dispatch.models import DispatchWindow
from jobs.health import queue_health_measure, queue_health_snapshot_create
from jobs.maintenance import delete_in_batches, maintenance_tasks, prune_finished_jobs, recover_expired_leases
from jobs.models import QueueHealthSnapshot
from runs.models import DeadLetter, FunctionRun
from runs.reconcile import reconcile
from runs.services import dead_letters_unresolved
from runs.status import status_write

logger = logging.getLogger(__name__)


def run_maintenance(*, now: datetime) -> dict[str, Any]:
    """Run every maintenance task once and return a compact JSON summary."""
    started = time.monotonic()
    summary: dict[str, Any] = {
        "recovered": recover_expired_leases(now=now),
        "reconciled": _reconcile(now=now),
        "pruned": prune(now=now),
        "health": queue_health(now=now),
    }
    extra: dict[str, Any] = {}
    for name, task in maintenance_tasks():
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


def _reconcile(*, now: datetime) -> dict[str, Any]:
    """Run the reconciler; its failure is reported in the summary and does not stop the rest of maintenance."""
    try:
        return reconcile(now=now)
    except Exception as exc:  # The reconciler's failure must not cost the pruning and the health report.
        logger.exception("reconcile failed", extra={"action": "maintenance", "task": "reconcile"})
        return {"error": one_line(exc)}


def prune(*, now: datetime) -> dict[str, int]:
    """Delete history past its retention, in bounded batches; never an unresolved dead letter."""
    runs_cutoff = now - timedelta(days=settings.RUNS_RETENTION_DAYS)
    windows_cutoff = now - timedelta(days=settings.WINDOWS_RETENTION_DAYS)
    return {
        # Resolved letters first: that is what lets their job or run go next.
        "deadLetters": delete_in_batches(
            DeadLetter.objects.filter(resolved_at__isnull=False, resolved_at__lt=runs_cutoff)
        ),
        "jobs": prune_finished_jobs(now=now),
        "runs": delete_in_batches(
            FunctionRun.objects.filter(started_at__lt=runs_cutoff, dead_letter__isnull=True).exclude(
                status=FunctionRun.Status.RUNNING
            )
        ),
        "windows": delete_in_batches(DispatchWindow.objects.filter(created_at__lt=windows_cutoff)),
        # Snapshots are kept as long as windows: the report compares one with the other.
        "queueHealthSnapshots": delete_in_batches(QueueHealthSnapshot.objects.filter(taken_at__lt=windows_cutoff)),
    }


def queue_health(*, now: datetime) -> dict[str, Any]:
    """Return backlog, lag and unresolved dead letters; store a snapshot, log them and write a status blob."""
    measured = queue_health_measure(now=now, unresolved_dead_letters=dead_letters_unresolved())
    queue_health_snapshot_create(health=measured, now=now)
    health = measured.as_json()
    logger.info("queue health", extra={"action": "queue_health", **health})
    status_write(scope="global", job_name="queue-health", now=now, status="ok", output=health)
    return health
