"""The reconciler's settings, read and judged in one place: a bad value is a check (runs.E001), never a traceback."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from typing import Any

from django.conf import settings

from core.timefmt import parse_period

PROCESS_JOBS = "process-background-jobs"
# Five or six fields, optionally after a TZ= prefix (as Inngest reads them); Inngest checks the rest on sync.
CRON_RE = re.compile(r"(TZ=\S+ )?\S+( \S+){4,5}")
MIN_RUN_BOUND = timedelta(seconds=60)
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

    RECONCILE_RUN_BOUNDS names it, or it is the longest the run may legitimately take:
    INNGEST_STEP_BUDGET_SECONDS for each of its steps (claim, the work, finish; a drain
    has up to INNGEST_MAX_DRAIN_STEPS steps of work) and each of its attempts.
    """
    if (seconds := run_bounds().get(function_id)) is not None:
        return timedelta(seconds=seconds)
    work_steps = settings.INNGEST_MAX_DRAIN_STEPS if function_id == PROCESS_JOBS else 1
    attempts = settings.INNGEST_FUNCTION_RETRIES + 1
    derived = timedelta(seconds=settings.INNGEST_STEP_BUDGET_SECONDS * (work_steps + 2) * attempts)
    return max(derived, MIN_RUN_BOUND)


def problems() -> list[str]:
    """Return what is wrong with the reconciler's settings, each saying what to set."""
    found = []
    try:
        lookback()
    except ValueError as exc:
        found.append(f"RECONCILE_LOOKBACK: {exc}")
    try:
        run_bounds()
    except ValueError as exc:
        found.append(str(exc))
    cron = settings.RECONCILE_CRON.strip()
    if cron and not CRON_RE.fullmatch(cron):
        found.append(f"RECONCILE_CRON={cron!r} is not a cron schedule: write five fields, e.g. '*/5 * * * *'")
    if settings.RECONCILE_GRACE_WINDOWS < 0:
        found.append("RECONCILE_GRACE_WINDOWS must be 0 or more (windows of the job; the grace is at least 60 s)")
    if settings.RECONCILE_REPUBLISH_MAX_ATTEMPTS < 1 or settings.RECONCILE_REPUBLISH_BACKOFF_SECONDS < 0:
        found.append(
            "RECONCILE_REPUBLISH_MAX_ATTEMPTS must be 1 or more, RECONCILE_REPUBLISH_BACKOFF_SECONDS 0 or more"
        )
    return found
