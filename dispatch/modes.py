"""Mode resolution (docs/cron.md): which ticks dispatch to Inngest and which run inline."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings

from core.inngest import current_config
from core.timefmt import parse_iso_utc
from dispatch.keys import canary_bucket
from dispatch.registry import CronJob

logger = logging.getLogger(__name__)


def publishing_configured() -> bool:
    """Return whether Inngest publishing is configured (an event key, or the dev server)."""
    return current_config().publishing_configured


def dispatch_enabled(job: CronJob) -> bool:
    """Return whether the job dispatches: its flag, or publishing being configured when unset."""
    flag = settings.DISPATCH_FLAGS.get(job.flag_name)
    if flag is None:
        return publishing_configured()
    return bool(flag)


def inline_reason(job: CronJob, dispatch_key: str) -> str:
    """Return why a tick of the window runs inline rather than dispatching, or "" when it dispatches.

    The rule of docs/cron.md, past an operator's own --inline: force-inline, the job's
    flag (or, unset, whether publishing is configured), the canary.
    """
    if settings.BACKGROUND_JOBS_FORCE_INLINE:
        return "BACKGROUND_JOBS_FORCE_INLINE is on"
    if not dispatch_enabled(job):
        if settings.DISPATCH_FLAGS.get(job.flag_name) is None:
            return f"{job.flag_name} is unset and Inngest publishing is not configured"
        return f"{job.flag_name} is false (the rollback lever)"
    if not canary_selected(dispatch_key):
        percent = settings.BACKGROUND_JOBS_INNGEST_PERCENT
        return f"the window is outside the BACKGROUND_JOBS_INNGEST_PERCENT={percent} share"
    return ""


def canary_selected(dispatch_key: str) -> bool:
    """Return whether this window falls in the dispatched share (BACKGROUND_JOBS_INNGEST_PERCENT)."""
    percent: int = settings.BACKGROUND_JOBS_INNGEST_PERCENT
    return canary_bucket(dispatch_key) < percent


@dataclass(frozen=True)
class EmergencyFallback:
    """Whether a failed publish may fall back to an inline run, and why not while the switch is on."""

    active: bool
    problem: str = ""  # "" when the switch is off, or on and active


def emergency_fallback(*, now: datetime) -> EmergencyFallback:
    """Judge the emergency fallback: active only when the switch is on and its _UNTIL is in the future.

    The tick (`emergency_fallback_active`) and the check framework
    (`orchestrator.checks`) both ask here.
    """
    if not settings.BACKGROUND_JOBS_INLINE_EMERGENCY_FALLBACK:
        return EmergencyFallback(active=False)
    until_text = settings.BACKGROUND_JOBS_INLINE_EMERGENCY_FALLBACK_UNTIL.strip()
    if not until_text:
        return EmergencyFallback(active=False, problem="BACKGROUND_JOBS_INLINE_EMERGENCY_FALLBACK_UNTIL is not set")
    try:
        until = parse_iso_utc(until_text)
    except ValueError as exc:
        problem = f"BACKGROUND_JOBS_INLINE_EMERGENCY_FALLBACK_UNTIL is invalid: {exc}"
        return EmergencyFallback(active=False, problem=problem)
    if until > now:
        return EmergencyFallback(active=True)
    return EmergencyFallback(
        active=False, problem=f"BACKGROUND_JOBS_INLINE_EMERGENCY_FALLBACK_UNTIL={until_text} has passed"
    )


def emergency_fallback_active(now: datetime) -> bool:
    """Return whether a failed publish may fall back to an inline run.

    A switch left on without a future _UNTIL is logged as an error on every tick.
    """
    verdict = emergency_fallback(now=now)
    if verdict.problem:
        logger.error(
            "emergency inline fallback is on but inactive: set BACKGROUND_JOBS_INLINE_EMERGENCY_FALLBACK_UNTIL "
            "to a future ISO-8601 time, or turn the switch off",
            extra={
                "action": "emergency_fallback",
                "until": settings.BACKGROUND_JOBS_INLINE_EMERGENCY_FALLBACK_UNTIL or None,
            },
        )
    return verdict.active
