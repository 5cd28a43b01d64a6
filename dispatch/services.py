"""The dispatcher: one tick of one cron job, from mode resolution to the JSON answer.

The cron view and `manage.py dispatch_tick` both call `dispatch_tick`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import inngest
from django.conf import settings

from core.inngest import client_for, current_config
from core.logcontext import log_context
from core.timefmt import iso_utc
from dispatch import keys, modes
from dispatch.events import event_data, window_events
from dispatch.exceptions import ClaimLost, NotPublished
from dispatch.hooks import inline_run
from dispatch.metrics import dispatch_latency_observe, duplicate_tick_count, publish_count, windows_count
from dispatch.models import INLINE_CRASHED, DispatchWindow
from dispatch.publish import PublishError, publish_events
from dispatch.registry import CronContext, CronJob
from dispatch.schedule import drift_record
from dispatch.timetable import drift_of
from dispatch.windows import window_claim, window_close, window_set_mode

logger = logging.getLogger(__name__)

Mode = DispatchWindow.Mode
Status = DispatchWindow.Status
Source = DispatchWindow.Source


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
    window_seconds: int
    dispatch_key: str
    started: float
    publish_only: bool = False
    lateness_ms: int | None = None  # a cron tick's, for its own window: now - its start (negative: early)

    def elapsed_ms(self) -> int:
        return round((time.perf_counter() - self.started) * 1000)

    def data(self) -> dict[str, Any]:
        """Return the window's event payload (also kept with an inline run's dead letter)."""
        return event_data(
            job=self.job,
            source=self.source,
            now=self.now,
            dispatch_key=self.dispatch_key,
            correlation_id=self.correlation_id,
            window_start=self.window_start,
            window_seconds=self.window_seconds,
            params=self.params,
        )

    def body(self, *, mode: str, duplicate: bool = False, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {
            "mode": mode,
            "job": self.job.name,
            "dispatchKey": self.dispatch_key,
            "correlationId": self.correlation_id,
            "requestedAt": iso_utc(self.now),
            "dispatchWindowStart": iso_utc(self.window_start),
            "dispatchWindowSeconds": self.window_seconds,
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
    dispatch_key: str | None = None,
    publish_only: bool = False,
) -> TickResult:
    """Run one tick of `job`: claim its window once, then dispatch to Inngest or run inline.

    `at` picks the window (default: `now`); `inline` forces an inline run (an
    operator's emergency tick); `force` bypasses the window with a one-off key;
    `dispatch_key` ticks that very key of the window starting at `at` (the reconciler,
    re-publishing an orphaned window, perhaps one of the job's earlier schedule, which
    the current one would floor elsewhere). `publish_only` (the reconciler) never runs
    the window inline: when the job's mode resolves to an inline one, NotPublished is
    raised before the claim (the window is left as it is), and a failed publish does
    not fall back to inline under the emergency switch.
    """
    start = at if dispatch_key is not None and at is not None else job.timetable.window_of(at or now)
    end = job.timetable.following(start)
    # A cron tick for its own window (never a picked one): how late it came, and whether it matched the schedule.
    punctual = source == Source.CRON and at is None and dispatch_key is None and not force
    if dispatch_key is None:
        dispatch_key = keys.manual_dispatch_key(job.name, start) if force else keys.dispatch_key(job.name, start)
    tick = Tick(
        job=job,
        now=now,
        source=source,
        correlation_id=correlation_id,
        params=params or {},
        window_start=start,
        window_seconds=round((end - start).total_seconds()),
        dispatch_key=dispatch_key,
        started=time.perf_counter() if started is None else started,
        publish_only=publish_only,
        lateness_ms=round((now - start).total_seconds() * 1000) if punctual else None,
    )
    with log_context(correlationId=correlation_id, dispatchKey=tick.dispatch_key, job=job.name):
        if punctual:
            _check_drift(tick, end=end)
        mode = resolve_mode(tick, inline_requested=inline)
        if publish_only and mode != Mode.DISPATCH:
            raise NotPublished(
                mode=mode, reason=modes.inline_reason(job, tick.dispatch_key) or "an inline tick was asked for"
            )
        with log_context(mode=mode):
            return _tick(tick, mode=mode)


def resolve_mode(tick: Tick, *, inline_requested: bool) -> str:
    """Return the mode for this tick, in the order of docs/cron.md: forced inline, the job's flag, the canary."""
    if inline_requested or settings.BACKGROUND_JOBS_FORCE_INLINE:
        return Mode.INLINE_FORCED
    return Mode.INLINE if modes.inline_reason(tick.job, tick.dispatch_key) else Mode.DISPATCH


def _check_drift(tick: Tick, *, end: datetime) -> None:
    """Log and count a cron tick further than the job's tolerance from every window start (docs/cron.md)."""
    drift = drift_of(tick.now, start=tick.window_start, end=end)
    if drift <= tick.job.timetable.tolerance:
        return
    logger.warning(
        "cron tick off its job's schedule: check the cron service's configuration (manage.py cron_config)",
        extra={"action": "cron_drift", "driftSeconds": round(drift.total_seconds(), 3)},
    )
    drift_record(job=tick.job.name, now=tick.now)


def _tick(tick: Tick, *, mode: str) -> TickResult:
    event_ids = [keys.event_id(name, tick.dispatch_key) for name in tick.job.events] if mode == Mode.DISPATCH else []
    # The process's client is built (once, slowly on a busy machine) before the claim: from
    # the claim to its close a tick then takes the publish bound at most, half the stale bound.
    client = client_for(current_config()) if mode == Mode.DISPATCH else None
    claim = window_claim(
        dispatch_key=tick.dispatch_key,
        job=tick.job.name,
        window_start=tick.window_start,
        window_seconds=tick.window_seconds,
        mode=mode,
        source=tick.source,
        correlation_id=tick.correlation_id,
        event_ids=event_ids,
        now=tick.now,
        lateness_ms=tick.lateness_ms,
    )
    if not claim.won:
        return _duplicate(tick, claim.window)
    if claim.paused:
        return _paused(tick)
    try:
        if client is not None:
            return _dispatch(tick, claim.window, event_ids, client=client)
        return _run_inline(tick, claim.window, mode=mode)
    except ClaimLost as lost:
        # This tick outlived its stale bound and a later tick re-claimed the window: the
        # window is that tick's, and this one answers as the duplicate it has become.
        logger.warning(
            "window re-claimed by a later tick: answering as a duplicate",
            extra={"action": "window_close", "claim": lost.claim, "latestClaim": lost.window.claim},
        )
        return _duplicate(tick, lost.window)


def _dispatch(tick: Tick, window: DispatchWindow, event_ids: list[str], *, client: inngest.Inngest) -> TickResult:
    # Checked on every dispatching tick, so a switch left on without a future
    # _UNTIL is logged as an error each time, not only when a publish fails.
    fallback = modes.emergency_fallback_active(tick.now) and not tick.publish_only
    events = window_events(tick.job, tick.data())
    try:
        publish_events(events, client=client, timeout=settings.INNGEST_PUBLISH_TIMEOUT_SECONDS)
    except PublishError as exc:
        error = str(exc)
        publish_count(tick.job.name, failed=True)
        if fallback:
            window_set_mode(window, mode=Mode.INLINE_FALLBACK, now=tick.now)
            logger.error("publish failed: running inline (emergency fallback)", extra={"action": "publish"})
            return _run_inline(tick, window, mode=Mode.INLINE_FALLBACK, error=error)
        latency_ms = tick.elapsed_ms()
        window_close(window, status=Status.DISPATCH_FAILED, latency_ms=latency_ms, now=tick.now, error=error)
        dispatch_latency_observe(tick.job.name, latency_ms=latency_ms)
        body = tick.body(mode=Mode.DISPATCH_FAILED, eventIds=event_ids, error=error)
        logger.error("publish failed", extra={"action": "publish", "error": error, **_log_fields(body)})
        return TickResult(status_code=503, body=body)
    publish_count(tick.job.name, failed=False)
    latency_ms = tick.elapsed_ms()
    window_close(window, status=Status.ENQUEUED, latency_ms=latency_ms, now=tick.now)
    dispatch_latency_observe(tick.job.name, latency_ms=latency_ms)
    body = tick.body(mode=Mode.DISPATCH, enqueued=True, eventIds=event_ids)
    logger.info("window dispatched", extra={"action": "publish", **_log_fields(body)})
    return TickResult(status_code=202, body=body)


def _paused(tick: Tick) -> TickResult:
    windows_count(tick.job.name, Status.PAUSED)
    body = tick.body(mode=Mode.PAUSED)
    logger.info("tick of a paused job: window recorded as paused", extra={"action": "dispatch", **_log_fields(body)})
    return TickResult(status_code=200, body=body)


def _duplicate(tick: Tick, window: DispatchWindow) -> TickResult:
    extra: dict[str, Any] = {
        "enqueued": window.status == Status.ENQUEUED,
        "eventIds": list(window.event_ids),
    }
    if window.mode not in (Mode.DISPATCH, Mode.DISPATCH_FAILED):
        extra["summary"] = None  # This tick ran nothing; the window's own run answered earlier.
    # A missed window had no tick, hence no mode: the late tick is told it was missed.
    body = tick.body(mode=window.mode or window.status, duplicate=True, **extra)
    duplicate_tick_count(tick.job.name)
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
    result = inline_run(job=tick.job, ctx=ctx, payload=tick.data())
    errors = [error] if error else []
    if result.errors:
        errors.append(INLINE_CRASHED + "; ".join(result.errors))
    try:
        window_close(window, status=Status.INLINE, latency_ms=tick.elapsed_ms(), now=tick.now, error=" | ".join(errors))
    except ClaimLost as lost:
        # The units ran here (the run ledger kept them once): the answer says what they did,
        # and the window is left to the tick that re-claimed it.
        logger.warning(
            "window re-claimed by a later tick during the inline run: leaving it to that tick",
            extra={"action": "window_close", "claim": lost.claim, "latestClaim": lost.window.claim},
        )
    extra: dict[str, Any] = {"summary": result.summary}
    if errors:
        extra["error"] = " | ".join(errors)
    body = tick.body(mode=mode, **extra)
    logger.info("inline run finished", extra={"action": "dispatch", **_log_fields(body)})
    return TickResult(status_code=500 if result.errors else 200, body=body)


def _log_fields(body: dict[str, Any]) -> dict[str, Any]:
    names = ("duplicate", "enqueued", "latencyMs")
    return {name: body[name] for name in names}
