"""Claiming and closing dispatch windows: the database decides which tick runs a window."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import DateTimeField, JSONField, Q

from dispatch.exceptions import ClaimLost
from dispatch.metrics import tick_lateness_observe, windows_count
from dispatch.models import DispatchWindow
from dispatch.window_sql import FIELDS, SQL

logger = logging.getLogger(__name__)

Status = DispatchWindow.Status
Mode = DispatchWindow.Mode
Source = DispatchWindow.Source
# The ticks a pause stops: the cron service's, and the reconciler's catch-up. An operator's
# own tick (manual, emergency, a requeued dead letter) still runs.
PAUSABLE_SOURCES = frozenset({Source.CRON, Source.RECONCILER})
# The ticks that may run a window no tick came for (`missed`): an operator's, never a late cron tick's.
OPERATOR_SOURCES = frozenset({Source.MANUAL, Source.EMERGENCY})


@dataclass(frozen=True)
class Claim:
    """The window row and whether this tick won it (else it is a duplicate).

    A won claim's window carries its id and its `claim` number (the fence), and is
    `paused` when the job was paused (the tick then does nothing more); a
    duplicate's, the window's status, mode and event ids.
    """

    window: DispatchWindow
    won: bool

    @property
    def paused(self) -> bool:
        return self.won and self.window.status == Status.PAUSED


def stale_after(mode: str) -> timedelta:
    """Return how long a `pending` window of `mode` may sit before its tick is presumed dead.

    Twice the longest the tick may legitimately take: the publish bound for a
    dispatch, the inline time budget for an inline run.
    """
    bound = settings.INNGEST_PUBLISH_TIMEOUT_SECONDS
    if mode != Mode.DISPATCH:
        bound = max(bound, settings.INLINE_TIME_BUDGET_SECONDS)
    return timedelta(seconds=2 * bound)


def stale_pending(*, now: datetime) -> Q:
    """Return the windows left `pending` past their mode's stale bound at `now`: their tick is presumed dead.

    The rule of the re-claim (dispatch.window_sql), on `now` rather than the database's clock.
    """
    dispatch_bound, inline_bound = stale_after(Mode.DISPATCH), stale_after(Mode.INLINE)
    return Q(status=Status.PENDING) & (
        Q(mode=Mode.DISPATCH, updated_at__lt=now - dispatch_bound)
        | (~Q(mode=Mode.DISPATCH) & Q(updated_at__lt=now - inline_bound))
    )


def window_claim(
    *,
    dispatch_key: str,
    job: str,
    window_start: datetime,
    window_seconds: int,
    mode: str,
    source: str,
    correlation_id: str,
    event_ids: list[str],
    now: datetime,
    lateness_ms: int | None = None,
) -> Claim:
    """Claim the window for this tick, or count the tick as a duplicate.

    A new key is claimed by inserting its row (the unique constraint refuses all
    but one insert). A window whose publish failed, or whose pending tick died,
    is re-claimed by a conditional update that only one tick can win. A claim in
    mode `dispatch` records the event ids and counts one publish attempt.

    The claim is stamped, and a pending window judged stale, on the database's
    clock: `now` (the tick's time, read before its connection may have waited) is
    recorded as `requested_at` only. Each claim takes the next `claim` number, the
    fence that `window_set_mode` and `window_close` check.

    When the job is paused (and the tick's source is one a pause stops), the same
    statement claims the window as `paused` instead. An operator's tick (manual,
    emergency) re-claims a `missed` window too; a re-claim keeps the first claim's
    `source` and records its own in `reclaimed_by`. `lateness_ms` (a cron tick's) is
    recorded, and observed in the lateness histogram, by the first claim only.
    """
    publishing = mode == Mode.DISPATCH
    pause = [job if source in PAUSABLE_SOURCES else None]
    rule = _rule_params(dispatch_key, source=source, now=now)
    window = DispatchWindow(
        dispatch_key=dispatch_key,
        job=job,
        status=Status.PENDING,
        mode=mode,
        source=source,
        correlation_id=correlation_id,
        window_start=window_start,
        window_seconds=window_seconds,
        requested_at=now,
        event_ids=event_ids if publishing else [],
        publish_attempts=1 if publishing else 0,
        claim=1,
        created_at=now,
        lateness_ms=lateness_ms,
        reclaimed_by="",
    )
    if connection.vendor == "postgresql":
        # One round trip for both common cases: the first tick inserts, later ones count.
        row = _execute("claim_or_count", [*_insert_params(window), *pause, *rule])
        if row is not None and row[0] == "claimed":
            return _first(window, pk=row[1], status=row[2])
        if row is not None:
            return Claim(window=_duplicate_window(dispatch_key, row[1:]), won=False)
        # Neither: the row is re-claimable, or its inserting tick committed after this
        # statement's snapshot was taken; the steps below look again.
    else:
        row = _execute("insert", [*_insert_params(window), *_clock_params(now), *pause])
        if row is not None:
            return _first(window, pk=row[0], status=row[1])
    duplicate = _execute("count_duplicate", rule)
    if duplicate is not None:
        return Claim(window=_duplicate_window(dispatch_key, duplicate), won=False)
    # The window's publish failed, or its tick died: re-claim it, if this tick is first
    # (the update's condition is the re-claimable rule, so only one tick can match).
    fields = [Status.PENDING, mode, source, correlation_id, _datetime(now), publishing, _event_ids(event_ids)]
    row = _execute("reclaim", [*fields, int(publishing), *_clock_params(now), *pause, *rule])
    if row is None:
        # Another tick re-claimed it first: this one is a duplicate of that one.
        return Claim(window=_duplicate_window(dispatch_key, _execute("count", [dispatch_key])), won=False)
    window.claim, window.source, window.reclaimed_by = row[1], row[3], source
    logger.info(
        "window re-claimed",
        extra={"action": "window_claim", "dispatchKey": dispatch_key, "mode": mode, "claim": window.claim},
    )
    return _won(window, pk=row[0], status=row[2])


def _first(window: DispatchWindow, *, pk: int, status: str) -> Claim:
    """Return the claim of the window's first tick (its row inserted), a cron tick's lateness observed."""
    if window.lateness_ms is not None:
        tick_lateness_observe(window.job, lateness_ms=window.lateness_ms)
    return _won(window, pk=pk, status=status)


def _won(window: DispatchWindow, *, pk: int, status: str) -> Claim:
    """Return the claim this tick won; a paused job's window is paused (no events, no publish)."""
    window.pk = pk
    if status == Status.PAUSED:
        window.status, window.mode, window.event_ids, window.publish_attempts = Status.PAUSED, Mode.PAUSED, [], 0
    return Claim(window=window, won=True)


def _execute(name: str, params: list[Any]) -> Any:
    """Run one of the statements above; return the cursor's first row (None without one)."""
    with connection.cursor() as cursor:
        cursor.execute(SQL[connection.vendor][name], params)
        return cursor.fetchone() if cursor.description else None


def _insert_params(window: DispatchWindow) -> list[Any]:
    return [
        field.get_db_prep_save(value, connection) if adapt else value
        for field, adapt, value in zip(
            FIELDS, _ADAPTED, (getattr(window, field.attname) for field in FIELDS), strict=True
        )
    ]


# Only JSON and date-time values need Django's preparation for the driver; the others (text,
# numbers) go as they are, which spares every tick a dozen field method calls.
_ADAPTED = [isinstance(field, JSONField | DateTimeField) for field in FIELDS]


def _datetime(value: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(value)


def _event_ids(event_ids: list[str]) -> Any:
    return DispatchWindow._meta.get_field("event_ids").get_db_prep_save(event_ids, connection)


def _clock_params(now: datetime) -> list[Any]:
    """Return the parameters of {clock}: none on PostgreSQL (the database's clock), `now` on SQLite."""
    return [] if connection.vendor == "postgresql" else [_datetime(now)]


def _rule_params(dispatch_key: str, *, source: str, now: datetime) -> list[Any]:
    """Return the parameters of `dispatch_key = %s AND [NOT] _RECLAIMABLE`.

    `missed` is re-claimable by an operator's tick only. Each mode's stale bound is
    seconds before the database's clock on PostgreSQL, an instant before `now` on SQLite.
    """
    bounds = (stale_after(Mode.DISPATCH), stale_after(Mode.INLINE))
    if connection.vendor == "postgresql":
        stale_before = [bound.total_seconds() for bound in bounds]
    else:
        stale_before = [_datetime(now - bound) for bound in bounds]
    missed = Status.MISSED if source in OPERATOR_SOURCES else Status.DISPATCH_FAILED
    return [dispatch_key, Status.DISPATCH_FAILED, missed, Status.PENDING, Mode.DISPATCH, *stale_before]


def _duplicate_window(dispatch_key: str, row: tuple[Any, ...]) -> DispatchWindow:
    """The window a duplicate tick answers with, from (id, status, mode, event_ids)."""
    pk, status, mode, event_ids = row
    # Django has the drivers hand JSON back as text, for JSONField to decode.
    event_ids = json.loads(event_ids) if isinstance(event_ids, str) else event_ids
    return DispatchWindow(pk=pk, dispatch_key=dispatch_key, status=status, mode=mode, event_ids=event_ids)


def window_set_mode(window: DispatchWindow, *, mode: str, now: datetime) -> None:
    """Record a change of plan (a failed publish falling back to inline) on the claimed window.

    Raise ClaimLost when a later tick has re-claimed the window: it is that tick's now.
    """
    if _execute("set_mode", [mode, *_clock_params(now), window.pk, window.claim]) is None:
        raise _lost(window)
    window.mode = mode


def window_close(
    window: DispatchWindow,
    *,
    status: str,
    latency_ms: int,
    now: datetime,
    error: str = "",
) -> None:
    """Record how the claimed window ended: enqueued, inline, or dispatch_failed.

    Raise ClaimLost when a later tick has re-claimed the window (this tick's claim
    looked stale): the window is left to that tick.
    """
    if _execute("close", [status, latency_ms, error, *_clock_params(now), window.pk, window.claim]) is None:
        raise _lost(window)
    window.status, window.latency_ms, window.error = status, latency_ms, error
    windows_count(window.job, status)


def _lost(window: DispatchWindow) -> ClaimLost:
    return ClaimLost(claim=window.claim, window=DispatchWindow.objects.get(pk=window.pk))
