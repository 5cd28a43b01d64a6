"""A standing worker's upkeep: expired leases recovered as they expire, and the reconciler run every few minutes.

Without it a deployment of standing workers alone (`run_jobs --loop`, no cron
service, no Inngest) would never recover a lease or notice a missed window:
maintenance is what does both, and only a tick runs maintenance.

Lease recovery runs at start, then again when the earliest lease of the running
jobs ends, or JOBS_LEASE_SECONDS later when that is sooner: a claim made after a
recovery expires at least JOBS_LEASE_SECONDS after it, so no expired lease waits
longer than the worker takes to come round (an idle worker wakes for it, a busy one
looks between two drains). The reconciler runs at start and every
WORKER_CHORE_INTERVAL_SECONDS.
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
from jobs.maintenance import next_lease_expiry, recover_expired_leases

logger = logging.getLogger(__name__)

# How soon lease recovery looks again at a lease that had expired but could not be taken
# back (its row locked: a worker finishing the job right now).
RECHECK_SECONDS = 1.0


class WorkerChores:
    """Run each chore when it is due; `due_in()` says when the next one is."""

    def __init__(self, *, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._recovery_at: float | None = None
        self._reconcile_at: float | None = None

    def run_if_due(self, *, now: datetime) -> dict[str, Any] | None:
        """Run the chores that are due and return their summary; None when none is due."""
        moment = self._monotonic()
        summary: dict[str, Any] = {}
        if self._recovery_at is None or moment >= self._recovery_at:
            summary["recovered"] = recover_expired_leases(now=now)
            self._recovery_at = moment + _until_next_expiry(now)
        if self._reconcile_at is None or moment >= self._reconcile_at:
            summary["reconciled"] = _reconcile(now=now)
            self._reconcile_at = moment + settings.WORKER_CHORE_INTERVAL_SECONDS
        if not summary:
            return None
        # A lease recovery that took nothing back is DEBUG: an idle worker runs one every lease.
        busy = "reconciled" in summary or any(summary["recovered"].values())
        logger.log(
            logging.INFO if busy else logging.DEBUG, "worker chores done", extra={"action": "worker_chores", **summary}
        )
        return summary

    def due_in(self) -> float:
        """Return the seconds until a chore is due (0 when one is due now, or none has run yet)."""
        if self._recovery_at is None or self._reconcile_at is None:
            return 0.0
        return max(0.0, min(self._recovery_at, self._reconcile_at) - self._monotonic())


def _until_next_expiry(now: datetime) -> float:
    """Return the seconds until lease recovery should look again."""
    longest = float(settings.JOBS_LEASE_SECONDS)
    expiry = next_lease_expiry()
    if expiry is None:
        return longest
    return min(longest, max(RECHECK_SECONDS, (expiry - now).total_seconds()))


def _reconcile(*, now: datetime) -> dict[str, Any]:
    try:
        return worker_chore(now=now)
    except Exception as exc:  # A failing chore must not stop the worker from draining the queue.
        logger.exception("worker chore failed", extra={"action": "worker_chores"})
        return {"error": one_line(exc)}
