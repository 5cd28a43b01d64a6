"""Claiming and closing dispatch windows: the database decides which tick runs a window."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F

from dispatch.models import DispatchWindow

logger = logging.getLogger(__name__)

Status = DispatchWindow.Status
Mode = DispatchWindow.Mode


@dataclass(frozen=True)
class Claim:
    """The window row and whether this tick won it (else it is a duplicate)."""

    window: DispatchWindow
    won: bool


def stale_after(mode: str) -> timedelta:
    """Return how long a `pending` window of `mode` may sit before its tick is presumed dead.

    Twice the longest the tick may legitimately take: the publish bound for a
    dispatch, the inline time budget for an inline run.
    """
    bound = settings.INNGEST_PUBLISH_TIMEOUT_SECONDS
    if mode != Mode.DISPATCH:
        bound = max(bound, settings.INLINE_TIME_BUDGET_SECONDS)
    return timedelta(seconds=2 * bound)


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
) -> Claim:
    """Claim the window for this tick, or count the tick as a duplicate.

    A new key is claimed by inserting its row (the unique constraint refuses all
    but one insert). A window whose publish failed, or whose pending tick died,
    is re-claimed by a conditional update that only one tick can win. A claim in
    mode `dispatch` records the event ids and counts one publish attempt.
    """
    publishing = mode == Mode.DISPATCH
    try:
        with transaction.atomic():
            window = DispatchWindow.objects.create(
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
                created_at=now,
                updated_at=now,
            )
        return Claim(window=window, won=True)
    except IntegrityError:
        window = DispatchWindow.objects.get(dispatch_key=dispatch_key)
    if _reclaimable(window, now=now):
        fields: dict[str, object] = {
            "status": Status.PENDING,
            "mode": mode,
            "source": source,
            "correlation_id": correlation_id,
            "requested_at": now,
            "updated_at": now,
            "error": "",
        }
        if publishing:
            fields["event_ids"] = event_ids
        won = DispatchWindow.objects.filter(pk=window.pk, status=window.status, updated_at=window.updated_at).update(
            **fields, publish_attempts=F("publish_attempts") + int(publishing)
        )
        if won:
            for name, value in fields.items():
                setattr(window, name, value)
            window.publish_attempts += int(publishing)
            logger.info(
                "window re-claimed",
                extra={"action": "window_claim", "dispatchKey": dispatch_key, "mode": mode},
            )
            return Claim(window=window, won=True)
    DispatchWindow.objects.filter(pk=window.pk).update(duplicate_ticks=F("duplicate_ticks") + 1)
    return Claim(window=window, won=False)


def _reclaimable(window: DispatchWindow, *, now: datetime) -> bool:
    if window.status == Status.DISPATCH_FAILED:
        return True
    return window.status == Status.PENDING and window.updated_at < now - stale_after(window.mode)


def window_set_mode(window: DispatchWindow, *, mode: str, now: datetime) -> None:
    """Record a change of plan (a failed publish falling back to inline) on the claimed window."""
    DispatchWindow.objects.filter(pk=window.pk).update(mode=mode, updated_at=now)
    window.mode, window.updated_at = mode, now


def window_close(
    window: DispatchWindow,
    *,
    status: str,
    latency_ms: int,
    now: datetime,
    error: str = "",
) -> None:
    """Record how the claimed window ended: enqueued, inline, or dispatch_failed."""
    fields: dict[str, object] = {"status": status, "latency_ms": latency_ms, "error": error, "updated_at": now}
    DispatchWindow.objects.filter(pk=window.pk).update(**fields)
    for name, value in fields.items():
        setattr(window, name, value)
