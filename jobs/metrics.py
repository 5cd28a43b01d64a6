"""The queue's event metrics (docs/operations.md, "Metrics"): jobs finished and retried, queue wait, run time.

Each attempt is counted when the transaction that records its outcome commits: a
group of jobs rolled back and run again is counted once, as it ended.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import partial
from typing import Any

from prometheus_client import Counter, Histogram

from core.prometheus import after_commit
from jobs.models import BackgroundJob

JOBS_FINISHED = Counter(
    "orchestrator_jobs_finished",
    "Jobs that reached a final status, by kind and outcome (succeeded, dead, cancelled).",
    ["kind", "outcome"],
)
JOB_RETRIES = Counter(
    "orchestrator_job_retries",
    "Failed job attempts that will be tried again (the job is pending again), by kind.",
    ["kind"],
)
QUEUE_WAIT = Histogram(
    "orchestrator_job_queue_wait_seconds",
    "From the time a job attempt was due (run_after) to its start, by queue.",
    ["queue"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600),
)
RUN_TIME = Histogram(
    "orchestrator_job_run_seconds",
    "How long a job attempt ran, from its start to its handler's return or raise, by kind.",
    ["kind"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)
FINISHED = ("succeeded", "dead", "cancelled")


def job_attempt_observe(*, job: BackgroundJob, started_at: datetime, outcome: str, ran_seconds: float) -> None:
    """Count the attempt of `job` that started at `started_at` and ended so, once its outcome commits."""
    after_commit(partial(attempt_observed, job=job, started_at=started_at, outcome=outcome, ran_seconds=ran_seconds))


def attempt_observed(*, job: BackgroundJob, started_at: datetime, outcome: str, ran_seconds: float) -> None:
    """Count the attempt of `job` that started at `started_at` and ended so (its outcome committed)."""
    QUEUE_WAIT.labels(job.queue).observe(max((started_at - job.run_after).total_seconds(), 0.0))
    RUN_TIME.labels(job.kind).observe(ran_seconds)
    _count(job.kind, outcome)


def successes_observed(successes: Iterable[tuple[BackgroundJob, float]]) -> None:
    """Count and time each (job, seconds its handler ran) of `successes`, attempts whose marks committed together."""
    waits: dict[str, Any] = {}
    runs: dict[str, Any] = {}
    finished: dict[str, int] = {}
    for job, ran_seconds in successes:  # each child looked up once: a group's jobs share a few kinds and queues
        wait = waits.get(job.queue) or waits.setdefault(job.queue, QUEUE_WAIT.labels(job.queue))
        run = runs.get(job.kind) or runs.setdefault(job.kind, RUN_TIME.labels(job.kind))
        assert job.started_at is not None, "a job's handler runs once its start is stamped"
        wait.observe(max((job.started_at - job.run_after).total_seconds(), 0.0))
        run.observe(ran_seconds)
        finished[job.kind] = finished.get(job.kind, 0) + 1
    for kind, count in finished.items():
        JOBS_FINISHED.labels(kind, "succeeded").inc(count)


def job_ended_count(*, kind: str, outcome: str) -> None:
    """Count a job of `kind` that ended so without an attempt timed here, once that commits."""
    after_commit(partial(_count, kind, outcome))


def _count(kind: str, outcome: str) -> None:
    if outcome in FINISHED:
        JOBS_FINISHED.labels(kind, outcome).inc()
    else:
        JOB_RETRIES.labels(kind).inc()


def jobs_metrics_init(kinds: Iterable[str]) -> None:
    """Make the counters of each kind of `kinds` exist at 0, so that their first event shows in rate()."""
    for kind in kinds:
        for outcome in FINISHED:
            JOBS_FINISHED.labels(kind, outcome)
        JOB_RETRIES.labels(kind)
