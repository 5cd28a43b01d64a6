"""The runner: drain due jobs in batches, on one thread or several, within a time budget and a quota.

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

from jobs.claim import Clock, claim_batch, ready_backlog, release, run_job
from jobs.context import RunOrigin

logger = logging.getLogger(__name__)

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


def worker_name() -> str:
    """Return a name unique to this runner invocation: host, process and a random tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


def jobs_run(
    *,
    budget_seconds: float,
    batch_size: int | None = None,
    max_jobs: int | None = None,
    concurrency: int | None = None,
    origin: RunOrigin | None = None,
    clock: Clock = timezone.now,
    queue: str | None = None,
) -> RunSummary:
    """Drain due jobs until none are left, `budget_seconds` is spent or `max_jobs` ran.

    With `concurrency` (default JOBS_CONCURRENCY) above 1, that many threads drain
    at once, each with its own database connection: one job's commit then overlaps
    another's handler. Jobs claimed but not started when the budget runs out are
    released at once, not left to wait for their lease. Running out of budget or of
    `max_jobs` both count as `budgetExhausted`. With `queue`, only that queue's jobs
    are claimed (a Tasks queue name, `run_jobs --queue`).
    """
    started = time.monotonic()
    drain = _Drain(
        deadline=started + budget_seconds,
        batch_size=batch_size or settings.JOBS_BATCH_SIZE,
        quota=_Quota(max_jobs),
        origin=origin or RunOrigin(),
        clock=clock,
        queue=queue,
    )
    lanes = concurrency or settings.JOBS_CONCURRENCY
    if lanes == 1:
        summary = drain.run()
    else:
        with ThreadPoolExecutor(max_workers=lanes, thread_name_prefix="jobs-runner") as pool:
            summary = _combine(list(pool.map(lambda _: drain.run_in_thread(), range(lanes))))
    summary.remaining_backlog = ready_backlog(now=clock())
    summary.duration_ms = round((time.monotonic() - started) * 1000)
    logger.info(
        "jobs drained",
        extra={"action": "jobs_run", "concurrency": lanes, **summary.as_json(), **drain.origin.log_fields()},
    )
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
    queue: str | None = None

    def run(self) -> RunSummary:
        """Claim and run batches until the queue, the budget or the quota is exhausted."""
        worker = worker_name()
        summary = RunSummary()
        while not summary.budget_exhausted:
            if time.monotonic() >= self.deadline:
                summary.budget_exhausted = True
                break
            allowed = self.quota.take(self.batch_size)
            if allowed == 0:
                summary.budget_exhausted = True
                break
            batch = claim_batch(now=self.clock(), limit=allowed, worker=worker, queue=self.queue)
            self.quota.give_back(allowed - len(batch))
            if not batch:
                break
            for index, job in enumerate(batch):
                if time.monotonic() >= self.deadline:
                    release(batch[index:], worker=worker)
                    summary.budget_exhausted = True
                    break
                outcome = run_job(job, clock=self.clock, origin=self.origin)
                summary.claimed += 1
                setattr(summary, outcome, getattr(summary, outcome) + 1)
        return summary

    def run_in_thread(self) -> RunSummary:
        try:
            return self.run()
        finally:
            connection.close()  # each thread has its own connection: do not leak it


def _combine(parts: list[RunSummary]) -> RunSummary:
    summary = RunSummary(budget_exhausted=any(part.budget_exhausted for part in parts))
    for name in ("claimed", "succeeded", "retried", "dead", "lease_lost"):
        setattr(summary, name, sum(getattr(part, name) for part in parts))
    return summary
