"""Claims taken back from a worker that went away or lost its database, each lost attempt recorded on its job.

Lease recovery (jobs.maintenance) takes back the claims of workers that went away,
once their lease has expired; a standing worker (jobs.worker) takes back its own as
soon as the database answers again after it lost its connection. Either way a claim
whose handler never started goes back to the queue with its attempt given back, and
one whose handler started has lost its attempt: the job is retried at once, or buried
after its last attempt, and the attempt's error (jobs.exceptions.AttemptLost) says
what happened, to which worker, and when (docs/jobs.md, "When a worker goes away").
A lost attempt is counted, and a task's job buried for it sends `task_finished`, once
the taking back commits (jobs.observers).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db import transaction

from core.errors import one_line
from jobs.claim import bury, give_back, retry
from jobs.context import RunOrigin
from jobs.exceptions import AttemptLost, ConnectionLost, LeaseExpired
from jobs.models import BackgroundJob
from jobs.observers import attempt_lost
from jobs.outcome import errors_with

logger = logging.getLogger(__name__)


@dataclass
class TakenBack:
    """How many claims were taken back, by what became of them."""

    requeued: int = 0  # started: the attempt lost, the job due again now
    released: int = 0  # never started: the attempt given back
    dead: int = 0  # started on its last attempt: buried, with its dead letter

    def as_json(self) -> dict[str, int]:
        return {"requeued": self.requeued, "released": self.released, "dead": self.dead}

    def add(self, other: TakenBack) -> None:
        self.requeued, self.released, self.dead = (
            self.requeued + other.requeued,
            self.released + other.released,
            self.dead + other.dead,
        )


def jobs_take_back(
    jobs: Sequence[BackgroundJob],
    *,
    started: Callable[[BackgroundJob], bool],
    lost: Callable[[BackgroundJob], AttemptLost],
    now: datetime,
) -> TakenBack:
    """Take back `jobs`, running rows as they are now and locked by the caller's transaction.

    A job whose handler never started (`started` says) goes back to the queue with its
    attempt given back; one whose handler started is due again now, or dead after its
    last attempt, with `lost(job)` recorded as the attempt's error.
    """
    taken = TakenBack(released=give_back(BackgroundJob.objects.filter(pk__in=[j.pk for j in jobs if not started(j)])))
    for job in jobs:
        if not started(job):
            continue
        error = lost(job)
        last_error, errors = one_line(error), errors_with(job, error)
        row = BackgroundJob.objects.filter(pk=job.pk)
        if job.attempts < job.max_attempts:
            retry(row, run_after=now, error=last_error, errors=errors)
            attempt_lost(job=job, error=error, outcome="retried")
            taken.requeued += 1
        elif dead := bury(job, row=row, error=last_error, errors=errors, now=now, origin=RunOrigin()):
            attempt_lost(job=dead, error=error, outcome="dead")
            taken.dead += 1
    return taken


def lease_expired(job: BackgroundJob, *, now: datetime) -> LeaseExpired:
    """Return the error of `job`'s attempt, lost when its lease expired (lease recovery at `now`)."""
    error = LeaseExpired(f"lease expired on attempt {job.attempts} of {job.max_attempts}: the worker stopped")
    error.add_note(
        f"worker {job.locked_by}; started at {_instant(job.started_at)}; lease expired at "
        f"{_instant(job.lease_expires_at)}; taken back by lease recovery at {_instant(now)}"
    )
    return error


def claims_take_back(
    *, claims: Sequence[BackgroundJob], error: BaseException, lost_at: datetime, now: datetime
) -> TakenBack:
    """Take back a worker's own `claims` (jobs as it claimed them) after it lost its connection at `lost_at`.

    Only the claims still held are taken back: each job still running under its claim
    (its attempt number and worker name), that no other transaction holds locked. A
    claim is started when the worker started its handler (`started_at` set on the
    job as claimed): the worker knows, whatever the database kept of the start
    stamps (jobs.lease_pipeline).
    """
    held = {claim.pk: claim for claim in claims}
    with transaction.atomic():
        rows = [
            row
            for row in BackgroundJob.objects.filter(pk__in=held, status=BackgroundJob.Status.RUNNING)
            .order_by("pk")
            .select_for_update(skip_locked=True)
            if (row.attempts, row.locked_by) == (held[row.pk].attempts, held[row.pk].locked_by)
        ]
        taken = jobs_take_back(
            rows,
            started=lambda row: held[row.pk].started_at is not None,
            lost=lambda row: _connection_lost(row, error=error, lost_at=lost_at, now=now),
            now=now,
        )
    logger.warning(
        "claims taken back after the lost connection",
        extra={"action": "worker_recover", "claims": len(held), **taken.as_json()},
    )
    return taken


def _connection_lost(job: BackgroundJob, *, error: BaseException, lost_at: datetime, now: datetime) -> ConnectionLost:
    lost = ConnectionLost(
        f"the worker lost its database connection on attempt {job.attempts} of {job.max_attempts}: "
        "the attempt's writes rolled back"
    )
    lost.add_note(
        f"worker {job.locked_by}; connection lost at {_instant(lost_at)} ({one_line(error)}); taken back by the "
        f"worker at {_instant(now)}, once the database answered"
    )
    return lost


def _instant(moment: datetime | None) -> str:
    return "unknown" if moment is None else moment.isoformat(timespec="milliseconds")
