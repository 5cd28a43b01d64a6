"""A standing worker's upkeep: expired leases recovered and the reconciler run, at start and every few minutes.

Without it a deployment of standing workers alone (`run_jobs --loop`, no cron
service, no Inngest) would never recover a lease or notice a missed window:
maintenance is what does both, and only a tick runs maintenance.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from django.conf import settings

from core.errors import one_line
from jobs.hooks import worker_chore
from jobs.maintenance import recover_expired_leases

logger = logging.getLogger(__name__)


class WorkerChores:
    """Run the chores when they are due: at the first call, then WORKER_CHORE_INTERVAL_SECONDS apart."""

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._due_at: float | None = None

    def run_if_due(self, *, now: datetime) -> dict[str, Any] | None:
        """Run the chores if they are due and return their summary; None when they are not due."""
        moment = self._monotonic()
        if self._due_at is not None and moment < self._due_at:
            return None
        self._due_at = moment + settings.WORKER_CHORE_INTERVAL_SECONDS
        summary = {"recovered": recover_expired_leases(now=now), "reconciled": _reconcile(now=now)}
        logger.info("worker chores done", extra={"action": "worker_chores", **summary})
        return summary


def _reconcile(*, now: datetime) -> dict[str, Any]:
    try:
        return worker_chore(now=now)
    except Exception as exc:  # A failing chore must not stop the worker from draining the queue.
        logger.exception("worker chore failed", extra={"action": "worker_chores"})
        return {"error": one_line(exc)}
