"""The runner: drain due jobs in batches, on one thread or several, within a time budget and a quota, until stopped.

What happens to each claimed job (its lease, its fenced updates, retry or burial)
is jobs.claim.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from jobs.claim import Clock, Outcome, claim_batch, ready_backlog, release
from jobs.context import RunOrigin
from jobs.group import JobGroup
from jobs.interrupts import signals_counted
from jobs.lease import LeaseConnection
from jobs.models import BackgroundJob

logger = logging.getLogger(__name__)

# The budget of one drain of `manage.py run_jobs` when --budget is not given.
DEFAULT_DRAIN_BUDGET_SECONDS = 10.0
SUMMED = ("claimed", "succeeded", "retried", "dead", "leaseLost", "durationMs")


@dataclass
class RunSummary:
    claimed: int = 0
    succeeded: int = 0
    retried: int = 0
    dead: int = 0
    lease_lost: int = 0
    duration_ms: int = 0
    budget_exhausted: bool = False
    remaining_backlog: int = 0

    def as_json(self) -> dict[str, Any]:
        """Return the summary as the JSON object the contract names."""
        return {
            "claimed": self.claimed,
            "succeeded": self.succeeded,
            "retried": self.retried,
            "dead": self.dead,
            "leaseLost": self.lease_lost,
            "durationMs": self.duration_ms,
            "budgetExhausted": self.budget_exhausted,
            "remainingBacklog": self.remaining_backlog,
        }


def merge_summaries(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    """Return the summary of two consecutive drains (counts add up; the backlog is the later one)."""
    merged = {name: first[name] + second[name] for name in SUMMED}
    merged["budgetExhausted"] = second["budgetExhausted"]
    merged["remainingBacklog"] = second["remainingBacklog"]
    return merged


def process_prefix() -> str:
    """Return the start of the name of every runner of this process: host and process id."""
    return f"{socket.gethostname()}:{os.getpid()}:"


def worker_name() -> str:
    """Return a name unique to this runner invocation: host, process and a random tag."""
    return f"{process_prefix()}{secrets.token_hex(3)}"


def jobs_run(
    *,
    budget_seconds: float,
    batch_size: int | None = None,
    max_jobs: int | None = None,
    concurrency: int | None = None,
    origin: RunOrigin | None = None,
    clock: Clock = timezone.now,
    queue: str | None = None,
    stop: threading.Event | None = None,
    progress: Progress | None = None,
) -> RunSummary:
    """Drain due jobs until none are left, `budget_seconds` is spent, `max_jobs` ran, or `stop` is set.

    With `concurrency` (default JOBS_CONCURRENCY) above 1, that many threads drain
    at once, each with its own database connections: one job's commit then overlaps
    another's handler. Jobs claimed but not started when the budget runs out, or
    when `stop` is set (from another thread), are given back at once (their attempt
    not spent), not left to wait for their lease; a handler already running
    finishes first. Running out of budget or of `max_jobs` both count as
    `budgetExhausted`. With `queue`, only that queue's jobs are claimed (a Tasks
    queue name, `run_jobs --queue`). `progress` lets another thread read the counts
    while the drain runs.
    """
    progress = progress or Progress()
    drain = _Drain(
        deadline=time.monotonic() + budget_seconds,
        batch_size=batch_size or settings.JOBS_BATCH_SIZE,
        quota=_Quota(max_jobs),
        origin=origin or RunOrigin(),
        clock=clock,
        queue=queue,
        stop=stop or threading.Event(),
        progress=progress,
    )
    lanes = concurrency or settings.JOBS_CONCURRENCY
    with signals_counted():  # a handler's own SystemExit told from a signal's (jobs.interrupts)
        if lanes == 1:
            drain.run()
        else:
            with ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="jobs-runner") as pool:
                list(pool.map(lambda _: drain.run_in_thread(), range(lanes)))
    summary = progress.summary()
    summary.remaining_backlog = ready_backlog(now=clock(), queue=queue)
    # A drain that found nothing is DEBUG: an idle standing worker drains at every poll.
    logger.log(
        logging.INFO if summary.claimed else logging.DEBUG,
        "jobs drained",
        extra={"action": "jobs_run", "concurrency": lanes, **summary.as_json(), **drain.origin.log_fields()},
    )
    return summary


class Progress:
    """A drain's counts so far, one summary per thread: another thread may read them while it runs."""

    def __init__(self) -> None:
        self._started = time.monotonic()
        self._lanes: list[RunSummary] = []
        self._batches: dict[str, list[BackgroundJob]] = {}  # each thread's latest batch, by its worker name

    def hold(self, worker: str, batch: list[BackgroundJob]) -> None:
        """Keep `batch`, the latest claimed by `worker`: its earlier ones are settled before it claims again."""
        self._batches[worker] = batch

    def claims(self) -> list[BackgroundJob]:
        """Return the jobs of each thread's latest batch, as claimed (those whose handler started have `started_at`).

        After a drain that lost its connection these are the claims it may still hold
        (jobs.recovery.claims_take_back).
        """
        return [job for batch in list(self._batches.values()) for job in batch]

    def lane(self) -> RunSummary:
        """Return a new summary for one thread of the drain to count into."""
        summary = RunSummary()
        self._lanes.append(summary)
        return summary

    def summary(self) -> RunSummary:
        """Return the counts of every thread so far, and the time since the drain began (no backlog)."""
        lanes = list(self._lanes)
        summary = RunSummary(
            budget_exhausted=any(lane.budget_exhausted for lane in lanes),
            duration_ms=round((time.monotonic() - self._started) * 1000),
        )
        for name in ("claimed", "succeeded", "retried", "dead", "lease_lost"):
            setattr(summary, name, sum(getattr(lane, name) for lane in lanes))
        return summary


class _Quota:
    """How many more jobs the drain may claim (max_jobs), shared by its threads."""

    def __init__(self, limit: int | None) -> None:
        self._left = limit
        self._lock = threading.Lock()

    def take(self, wanted: int) -> int:
        """Reserve up to `wanted` claims and return how many were granted."""
        with self._lock:
            if self._left is None:
                return wanted
            granted = min(wanted, self._left)
            self._left -= granted
            return granted

    def give_back(self, unused: int) -> None:
        with self._lock:
            if self._left is not None:
                self._left += unused


@dataclass
class _Drain:
    deadline: float
    batch_size: int
    quota: _Quota
    origin: RunOrigin
    clock: Clock
    queue: str | None
    stop: threading.Event
    progress: Progress

    def run(self) -> None:
        """Claim and run batches until the queue, the budget or the quota is exhausted, or the drain is stopped."""
        summary = self.progress.lane()
        worker = worker_name()

        def count(outcome: Outcome) -> None:
            summary.claimed += 1
            setattr(summary, outcome, getattr(summary, outcome) + 1)

        with (
            LeaseConnection.for_this_thread() as lease,
            JobGroup(
                clock=self.clock, origin=self.origin, lease=lease, count=count, deadline=self.deadline, stop=self.stop
            ) as group,
        ):
            while not (summary.budget_exhausted or self.stop.is_set()):
                if time.monotonic() >= self.deadline:
                    summary.budget_exhausted = True
                    break
                allowed = self.quota.take(self.batch_size)
                if allowed == 0:
                    summary.budget_exhausted = True
                    break
                batch = claim_batch(now=self.clock(), limit=allowed, worker=worker, queue=self.queue)
                self.progress.hold(worker, batch)
                self.quota.give_back(allowed - len(batch))
                if not batch:
                    break
                for index, job in enumerate(batch):
                    if self.stop.is_set() or time.monotonic() >= self.deadline:
                        group.commit()
                        self._release(batch[index:], worker=worker)
                        summary.budget_exhausted = not self.stop.is_set()
                        break
                    group.run(job, upcoming=batch[index + 1 :])
                group.commit()  # the next claim commits on its own, and so must the group before it

    def run_in_thread(self) -> None:
        try:
            self.run()
        finally:
            connection.close()  # each thread has its own connection: do not leak it

    def _release(self, jobs: list[BackgroundJob], *, worker: str) -> None:
        released = release(jobs, worker=worker)
        reason = "the worker is stopping" if self.stop.is_set() else "the budget is spent"
        logger.info(
            "claimed jobs given back unstarted",
            extra={"action": "jobs_run", "released": released, "reason": reason, **self.origin.log_fields()},
        )
