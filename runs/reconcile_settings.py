"""The reconciler's settings, read and judged in one place: a bad value is a check (runs.E001), never a traceback."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.conf import settings

from core.timefmt import parse_period
from runs.inngest_cron import cron_problem

PROCESS_JOBS = "process-background-jobs"
MIN_RUN_BOUND = timedelta(seconds=60)
# How long Inngest waits before it tries a failed step again (pkg/backoff/backoff.go in github.com/inngest/inngest):
# by the number of the attempt that failed (the last entry for every later one), plus up to 30 s of jitter.
RETRY_BACKOFF_SECONDS = (15, 30, 60, 120, 300, 600, 1200, 2400, 3600, 7200)
RETRY_JITTER_SECONDS = 30
MAX_RETRIES = 20  # Inngest lowers more retries to this (pkg/consts/consts.go)
SEE = "see docs/configuration.md, 'Reconciliation'"


def lookback() -> timedelta:
    """Return RECONCILE_LOOKBACK: how far back the reconciler looks; raise ValueError when it is unreadable."""
    return parse_period(settings.RECONCILE_LOOKBACK)


def run_bounds() -> dict[str, float]:
    """Return RECONCILE_RUN_BOUNDS, {function id: seconds}; raise ValueError when it is not that."""
    raw: Any = settings.RECONCILE_RUN_BOUNDS
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"RECONCILE_RUN_BOUNDS is not JSON ({exc})") from exc
    if not isinstance(raw, dict) or not all(
        isinstance(name, str) and type(seconds) in (int, float) and seconds > 0 for name, seconds in raw.items()
    ):
        raise ValueError('RECONCILE_RUN_BOUNDS must be a JSON object of function id -> seconds, e.g. {"cron-x": 7200}')
    return {name: float(seconds) for name, seconds in raw.items()}


def run_bound(function_id: str) -> timedelta:
    """Return how long a run of `function_id` may go without progress before it is abandoned.

    RECONCILE_RUN_BOUNDS names it, or it is the longest the run may legitimately go
    without progress (docs/inngest.md, "Retries and concurrency"): Inngest's longest wait
    before a retry, then the steps of an older run of the same function, which go first
    under concurrency 1 — at most INNGEST_STEP_BUDGET_SECONDS for each of its steps
    (claim, the work, finish; a drain has up to INNGEST_MAX_DRAIN_STEPS steps of work)
    and each of their attempts.
    """
    if (seconds := run_bounds().get(function_id)) is not None:
        return timedelta(seconds=seconds)
    work_steps = settings.INNGEST_MAX_DRAIN_STEPS if function_id == PROCESS_JOBS else 1
    attempts = settings.INNGEST_FUNCTION_RETRIES + 1
    work = timedelta(seconds=settings.INNGEST_STEP_BUDGET_SECONDS * (work_steps + 2) * attempts)
    return max(work + longest_retry_wait(), MIN_RUN_BOUND)


def longest_retry_wait() -> timedelta:
    """Return the longest Inngest waits before it tries a step again: after the last attempt but one, full jitter."""
    retries = min(settings.INNGEST_FUNCTION_RETRIES, MAX_RETRIES)
    if retries == 0:
        return timedelta(0)
    backoff = RETRY_BACKOFF_SECONDS[min(retries, len(RETRY_BACKOFF_SECONDS)) - 1]
    return timedelta(seconds=backoff + RETRY_JITTER_SECONDS)


def retry_after_problem(function_id: str, *, wait: timedelta) -> str:
    """Return why a retry asked for in `wait` (a RetryAfterError) comes after the run's bound, or ""."""
    bound = run_bound(function_id)
    if wait <= bound:
        return ""
    return (
        f"asks Inngest to wait {wait.total_seconds():.0f} s, more than the {bound.total_seconds():.0f} s a run of "
        f"{function_id} may go without progress: the reconciler would abandon it first. Raise its bound in "
        f"RECONCILE_RUN_BOUNDS ({SEE})"
    )


def shortest_bound() -> timedelta:
    """Return the least a bound set in RECONCILE_RUN_BOUNDS may be: the longest retry wait, then one other step."""
    return longest_retry_wait() + timedelta(seconds=settings.INNGEST_STEP_BUDGET_SECONDS)


def problems() -> list[str]:
    """Return what is wrong with the reconciler's settings, each saying what to set."""
    found = []
    try:
        lookback()
    except ValueError as exc:
        found.append(f"RECONCILE_LOOKBACK: {exc}")
    try:
        bounds = run_bounds()
    except ValueError as exc:
        found.append(str(exc))
        bounds = {}
    least = shortest_bound()
    found += [
        f"RECONCILE_RUN_BOUNDS gives {name} {seconds:g} s, less than Inngest may wait before it tries a step again "
        f"({least.total_seconds():g} s with INNGEST_FUNCTION_RETRIES={settings.INNGEST_FUNCTION_RETRIES}): "
        "its runs would be abandoned while Inngest still retries them"
        for name, seconds in bounds.items()
        if seconds < least.total_seconds()
    ]
    cron = settings.RECONCILE_CRON.strip()
    if cron and (problem := cron_problem(cron)):
        found.append(
            f"RECONCILE_CRON={cron!r} {problem}; e.g. '*/5 * * * *'. Inngest refuses an app with a schedule it cannot "
            "read: none of its functions would run"
        )
    if settings.RECONCILE_GRACE_WINDOWS < 0:
        found.append("RECONCILE_GRACE_WINDOWS must be 0 or more (windows of the job; the grace is at least 60 s)")
    if settings.RECONCILE_REPUBLISH_MAX_ATTEMPTS < 1 or settings.RECONCILE_REPUBLISH_BACKOFF_SECONDS < 0:
        found.append(
            "RECONCILE_REPUBLISH_MAX_ATTEMPTS must be 1 or more, RECONCILE_REPUBLISH_BACKOFF_SECONDS 0 or more"
        )
    return found
