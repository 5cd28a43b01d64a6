"""The dispatcher: one tick of one cron job, from mode resolution to the JSON answer.

The cron view and `manage.py dispatch_tick` both call `dispatch_tick`.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder

from dispatch import keys
from dispatch.models import DispatchWindow
from dispatch.registry import CronContext, CronJob
from dispatch.windows import window_claim, window_close
from orchestrator.errors import one_line
from orchestrator.timefmt import iso_utc

logger = logging.getLogger(__name__)

Mode = DispatchWindow.Mode
Status = DispatchWindow.Status


@dataclass(frozen=True)
class TickResult:
    """The HTTP status and JSON body of a tick, identical for the view and the command."""

    status_code: int
    body: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Tick:
    """Everything a tick knows before it claims its window."""

    job: CronJob
    now: datetime
    source: str
    correlation_id: str
    params: dict[str, Any]
    window_start: datetime
    dispatch_key: str
    started: float

    def elapsed_ms(self) -> int:
        return round((time.perf_counter() - self.started) * 1000)

    def body(self, *, mode: str, duplicate: bool = False, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "mode": mode,
            "job": self.job.name,
            "dispatchKey": self.dispatch_key,
            "correlationId": self.correlation_id,
            "requestedAt": iso_utc(self.now),
            "dispatchWindowStart": iso_utc(self.window_start),
            "dispatchWindowSeconds": self.job.window_seconds,
            "enqueued": False,
            "duplicate": duplicate,
            "eventIds": [],
        }
        body.update(extra)
        body["latencyMs"] = self.elapsed_ms()
        return body


def dispatch_tick(
    *,
    job: CronJob,
    now: datetime,
    source: str,
    correlation_id: str,
    params: dict[str, Any] | None = None,
    at: datetime | None = None,
    inline: bool = False,
    force: bool = False,
    started: float | None = None,
) -> TickResult:
    """Run one tick of `job`: claim its window once, then dispatch or run inline.

    `at` picks the window (default: `now`); `inline` forces an inline run (an
    operator's emergency tick); `force` bypasses the window with a one-off key.
    """
    start = keys.window_start(at or now, job.window_seconds)
    tick = Tick(
        job=job,
        now=now,
        source=source,
        correlation_id=correlation_id,
        params=params or {},
        window_start=start,
        dispatch_key=keys.manual_dispatch_key(job.name, start) if force else keys.dispatch_key(job.name, start),
        started=time.perf_counter() if started is None else started,
    )
    mode = resolve_mode(tick, inline_requested=inline)
    claim = window_claim(
        dispatch_key=tick.dispatch_key,
        job=job.name,
        window_start=start,
        window_seconds=job.window_seconds,
        mode=mode,
        source=source,
        correlation_id=correlation_id,
        now=now,
    )
    if not claim.won:
        return _duplicate(tick, claim.window)
    return _run_inline(tick, claim.window, mode=mode)


def resolve_mode(tick: Tick, *, inline_requested: bool) -> str:
    """Return the mode for this tick, in the order SPEC §3 gives."""
    if inline_requested or settings.BACKGROUND_JOBS_FORCE_INLINE:
        return Mode.INLINE_FORCED
    return Mode.INLINE


def _duplicate(tick: Tick, window: DispatchWindow) -> TickResult:
    extra: dict[str, Any] = {
        "enqueued": window.status == Status.ENQUEUED,
        "eventIds": list(window.event_ids),
    }
    if window.mode != Mode.DISPATCH:
        extra["summary"] = None  # This tick ran nothing; the window's own run answered earlier.
    body = tick.body(mode=window.mode, duplicate=True, **extra)
    logger.info("duplicate tick", extra={"action": "dispatch", **_log_fields(body)})
    return TickResult(status_code=200, body=body)


def _run_inline(tick: Tick, window: DispatchWindow, *, mode: str, error: str = "") -> TickResult:
    ctx = CronContext(
        job=tick.job.name,
        params=tick.params,
        now=tick.now,
        budget_seconds=settings.INLINE_TIME_BUDGET_SECONDS,
        dispatch_key=tick.dispatch_key,
        correlation_id=tick.correlation_id,
        source=tick.source,
    )
    try:
        summary = _jsonable(tick.job.load()(ctx))
    except Exception as exc:  # The job's own code may raise anything: answer 500 JSON, free the window.
        crash = one_line(exc)
        window_close(window, status=Status.DISPATCH_FAILED, latency_ms=tick.elapsed_ms(), now=tick.now, error=crash)
        logger.exception("inline run crashed", extra={"action": "dispatch", "dispatchKey": tick.dispatch_key})
        body = tick.body(mode=mode, summary=None, error=f"inline run crashed: {crash}")
        return TickResult(status_code=500, body=body)
    window_close(window, status=Status.INLINE, latency_ms=tick.elapsed_ms(), now=tick.now, error=error)
    extra: dict[str, Any] = {"summary": summary}
    if error:
        extra["error"] = error
    body = tick.body(mode=mode, **extra)
    logger.info("inline run finished", extra={"action": "dispatch", **_log_fields(body)})
    return TickResult(status_code=200, body=body)


def _jsonable(value: Any) -> Any:
    """Return `value` as plain JSON types (dates and decimals become strings)."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))


def _log_fields(body: dict[str, Any]) -> dict[str, Any]:
    names = ("mode", "job", "dispatchKey", "correlationId", "duplicate", "enqueued", "latencyMs")
    return {name: body[name] for name in names}
