"""Queue health: backlog per status, lag, unresolved dead letters; measured now or read from snapshots.

The dead letters belong to the run ledger above the queue: the caller counts them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from jobs.models import BackgroundJob, QueueHealthSnapshot


@dataclass(frozen=True)
class QueueHealth:
    """The queue at one instant. `lag_seconds` is the age of the oldest due pending job (0 when none is due)."""

    pending: int
    ready: int
    running: int
    dead: int
    lag_seconds: float
    unresolved_dead_letters: int

    def as_json(self) -> dict[str, Any]:
        return {
            "pending": self.pending,
            "ready": self.ready,
            "running": self.running,
            "dead": self.dead,
            "lagSeconds": self.lag_seconds,
            "unresolvedDeadLetters": self.unresolved_dead_letters,
        }


@dataclass(frozen=True)
class Due:
    """The due pending jobs at one instant: how many (the backlog), and the age of the oldest (the lag)."""

    ready: int
    lag_seconds: float


def queue_due_measure(*, now: datetime) -> Due:
    """Return the backlog and the lag at `now`: two reads of the due jobs' index entries, whatever waits for later."""
    due = BackgroundJob.objects.filter(status=BackgroundJob.Status.PENDING, run_after__lte=now)
    oldest_due = due.order_by("run_after").values_list("run_after", flat=True).first()
    return Due(
        ready=due.count(),
        lag_seconds=round(max((now - oldest_due).total_seconds(), 0.0), 3) if oldest_due else 0.0,
    )


def queue_health_measure(*, now: datetime, unresolved_dead_letters: int) -> QueueHealth:
    """Return the queue's health at `now`, from a handful of indexed counts (and the caller's letter count).

    Counting the pending jobs reads one index entry per pending job, due or not.
    """
    jobs = BackgroundJob.objects
    due = queue_due_measure(now=now)
    return QueueHealth(
        pending=jobs.filter(status=BackgroundJob.Status.PENDING).count(),
        ready=due.ready,
        running=jobs.filter(status=BackgroundJob.Status.RUNNING).count(),
        dead=jobs.filter(status=BackgroundJob.Status.DEAD).count(),
        lag_seconds=due.lag_seconds,
        unresolved_dead_letters=unresolved_dead_letters,
    )


def queue_health_snapshot_create(*, health: QueueHealth, now: datetime) -> QueueHealthSnapshot:
    """Store `health` as the snapshot taken at `now`."""
    return QueueHealthSnapshot.objects.create(taken_at=now, **asdict(health))
