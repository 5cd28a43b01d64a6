"""Mode resolution (SPEC §3): which ticks dispatch to Inngest and which run inline."""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings

from core.timefmt import parse_iso_utc
from dispatch.keys import canary_bucket
from dispatch.registry import CronJob

logger = logging.getLogger(__name__)


def publishing_configured() -> bool:
    """Return whether Inngest publishing is configured (an event key, or the dev server)."""
    return bool(settings.INNGEST_EVENT_KEY) or inngest_dev_mode()


def inngest_dev_mode() -> bool:
    """Return whether INNGEST_DEV selects the dev server ("1", "true", or its URL)."""
    return settings.INNGEST_DEV.strip().lower() not in ("", "0", "false")


def dispatch_enabled(job: CronJob) -> bool:
    """Return whether the job dispatches: its flag, or publishing being configured when unset."""
    flag = settings.DISPATCH_FLAGS.get(job.flag_name)
    if flag is None:
        return publishing_configured()
    return bool(flag)


def canary_selected(dispatch_key: str) -> bool:
    """Return whether this window falls in the dispatched share (BACKGROUND_JOBS_INNGEST_PERCENT)."""
    percent: int = settings.BACKGROUND_JOBS_INNGEST_PERCENT
    return canary_bucket(dispatch_key) < percent


def emergency_fallback_active(now: datetime) -> bool:
    """Return whether a failed publish may fall back to an inline run.

    Only when the switch is on and its _UNTIL is a valid instant in the future; a
    switch left on without one is logged as an error on every tick.
    """
    if not settings.BACKGROUND_JOBS_INLINE_EMERGENCY_FALLBACK:
        return False
    until_text = settings.BACKGROUND_JOBS_INLINE_EMERGENCY_FALLBACK_UNTIL
    try:
        until = parse_iso_utc(until_text) if until_text else None
    except ValueError:
        until = None
    if until is not None and until > now:
        return True
    logger.error(
        "emergency inline fallback is on but inactive: set BACKGROUND_JOBS_INLINE_EMERGENCY_FALLBACK_UNTIL "
        "to a future ISO-8601 time, or turn the switch off",
        extra={"action": "emergency_fallback", "until": until_text or None},
    )
    return False
