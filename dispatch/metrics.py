"""The dispatcher's event metrics (docs/operations.md, "Metrics"): windows by outcome, duplicate ticks,
publishes and their failures, dispatch latency, the cron service's tick lateness. Each is counted once the row
that records it commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

from prometheus_client import Counter, Histogram

from core.prometheus import after_commit
from dispatch.models import DispatchWindow

# A window is counted when it settles: never as `pending`.
COUNTED_OUTCOMES = [status for status in DispatchWindow.Status.values if status != DispatchWindow.Status.PENDING]

WINDOWS = Counter(
    "orchestrator_windows",
    "Dispatch windows by cron job and the outcome recorded for them (enqueued, dispatch_failed, inline, paused, "
    "missed, abandoned); a window a later tick re-claimed (its publish had failed, an operator ran it missed) "
    "counts under both.",
    ["job", "outcome"],
)
DUPLICATE_TICKS = Counter(
    "orchestrator_duplicate_ticks", "Ticks of a window already claimed: nothing was published or run for them.", ["job"]
)
PUBLISHES = Counter(
    "orchestrator_publishes",
    "Publishes of a window's events to Inngest (each with its retries, in its bound).",
    ["job"],
)
PUBLISH_FAILURES = Counter(
    "orchestrator_publish_failures",
    "Publishes that failed: the event API refused, answered garbage or timed out.",
    ["job"],
)
# The SLO's gate is 2 s (SLO_DISPATCH_P95_MS): a bucket ends there.
DISPATCH_LATENCY = Histogram(
    "orchestrator_dispatch_latency_seconds",
    "From a dispatching tick's arrival to its window enqueued (or its publish given up), by cron job.",
    ["job"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 1.5, 2, 3, 5, 10),
)

# From on time to an hour late, with a bucket at the default tolerance (30 s) and one at the gate
# (60 s, SLO_MAX_TICK_LATENESS_SECONDS); a tick later than its tolerance is drift too.
TICK_LATENESS = Histogram(
    "orchestrator_cron_tick_lateness_seconds",
    "How late the cron service's first tick of each window came (its arrival minus the window's start; an early "
    "tick counts as 0), by cron job.",
    ["job"],
    buckets=(0.25, 0.5, 1, 2, 5, 10, 15, 30, 45, 60, 120, 300, 600, 1800, 3600),
)


def windows_count(job: str, outcome: str, *, windows: int = 1) -> None:
    """Count `windows` windows of `job` that ended as `outcome`, once that commits."""
    if windows:
        after_commit(partial(WINDOWS.labels(job, outcome).inc, windows))


def duplicate_tick_count(job: str) -> None:
    """Count a tick of `job` that found its window claimed already."""
    DUPLICATE_TICKS.labels(job).inc()


def publish_count(job: str, *, failed: bool) -> None:
    """Count a publish of `job`'s events, and whether it failed."""
    PUBLISHES.labels(job).inc()
    if failed:
        PUBLISH_FAILURES.labels(job).inc()


def dispatch_latency_observe(job: str, *, latency_ms: int) -> None:
    """Observe the latency of a dispatching tick of `job` whose window it closed (enqueued or dispatch_failed)."""
    DISPATCH_LATENCY.labels(job).observe(latency_ms / 1000)


def tick_lateness_observe(job: str, *, lateness_ms: int) -> None:
    """Observe how late the cron service's tick of `job` that first claimed its window came, once that commits."""
    after_commit(partial(TICK_LATENESS.labels(job).observe, max(lateness_ms, 0) / 1000))


def dispatch_metrics_init(jobs: Iterable[str]) -> None:
    """Make the counters and histograms of each cron job of `jobs` exist at 0, so that their first event shows in
    rate() (a daily job's only tick of the day included)."""
    for job in jobs:
        for outcome in COUNTED_OUTCOMES:
            WINDOWS.labels(job, outcome)
        for metric in (DUPLICATE_TICKS, PUBLISHES, PUBLISH_FAILURES, DISPATCH_LATENCY, TICK_LATENESS):
            metric.labels(job)
