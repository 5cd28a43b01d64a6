"""One claimed job run on its own, in a transaction of its own: what a test of a single job's outcome calls."""

from __future__ import annotations

from jobs.claim import Clock, Outcome
from jobs.context import RunOrigin
from jobs.group import JobGroup
from jobs.lease import LeaseConnection
from jobs.models import BackgroundJob


def run_job(job: BackgroundJob, *, clock: Clock, origin: RunOrigin, lease: LeaseConnection | None = None) -> Outcome:
    """Start one claimed job if its claim still holds, run it in a transaction of its own and return what happened.

    `lease` is where the start and the handler's heartbeats are written (the
    thread's own connection when none is given).
    """
    outcomes: list[Outcome] = []
    with JobGroup(
        clock=clock, origin=origin, lease=lease or LeaseConnection(separate=False), count=outcomes.append, max_jobs=1
    ) as group:
        group.run(job)
    [outcome] = outcomes
    return outcome
