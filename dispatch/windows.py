"""Claiming and closing dispatch windows: the database decides which tick runs a window."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection
from django.db.models import BooleanField, F
from django.db.models.expressions import RawSQL

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
        created_at=now,
        updated_at=now,
    )
    if connection.vendor == "postgresql":
        # One round trip for both common cases: the first tick inserts, later ones count.
        row = _execute("claim_or_count", [*_insert_params(window), *_rule_params(dispatch_key, now=now)])
        if row is not None and row[0] == "claimed":
            window.pk = row[1]
            return Claim(window=window, won=True)
        if row is not None:
            return Claim(window=_duplicate_window(dispatch_key, row[1:]), won=False)
        # Neither: the row is re-claimable, or its inserting tick committed after this
        # statement's snapshot was taken; the steps below look again.
    else:
        window.pk = _insert_unless_taken(window)
        if window.pk is not None:
            return Claim(window=window, won=True)
    duplicate = _count_duplicate(dispatch_key, now=now)
    if duplicate is not None:
        return Claim(window=duplicate, won=False)
    # The window's publish failed, or its tick died: re-claim it, if this tick is first
    # (the update's condition is the re-claimable rule, so only one tick can match).
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
    reclaimable = RawSQL(f"dispatch_key = %s AND {_RECLAIMABLE}", _rule_params(dispatch_key, now=now), BooleanField())
    reclaim = DispatchWindow.objects.filter(reclaimable)
    won = reclaim.update(**fields, publish_attempts=F("publish_attempts") + int(publishing)) == 1
    if not won:
        DispatchWindow.objects.filter(dispatch_key=dispatch_key).update(duplicate_ticks=F("duplicate_ticks") + 1)
    window = DispatchWindow.objects.get(dispatch_key=dispatch_key)
    if won:
        logger.info("window re-claimed", extra={"action": "window_claim", "dispatchKey": dispatch_key, "mode": mode})
    return Claim(window=window, won=won)


# The claim, the duplicate count and the close run on every tick, so they are single
# statements (the ORM has no INSERT ... ON CONFLICT ... RETURNING, nor UPDATE ... RETURNING).
#
# Window bookkeeping is idempotent by design, so on PostgreSQL these statements commit
# without waiting for the WAL flush: synchronous_commit is turned off for each one's
# own transaction, from within the statement (no extra round trip). A database crash
# that loses a window row only lets a later tick claim the window again and re-publish
# the same event ids, which Inngest deduplicates; the run ledger, committed
# synchronously, stops any second run of the window's work, inline or in Inngest.
_TABLE = DispatchWindow._meta.db_table
_COLUMNS = (
    "dispatch_key", "job", "status", "mode", "source", "correlation_id", "window_start", "window_seconds",
    "requested_at", "event_ids", "publish_attempts", "duplicate_ticks", "latency_ms", "error", "created_at",
    "updated_at",
)  # fmt: skip
_FIELDS: list[Any] = [DispatchWindow._meta.get_field(name) for name in _COLUMNS]
# The re-claimable rule, written once: the publish failed, or the window sat `pending` past
# its mode's stale bound (its tick died). The duplicate count takes the windows it does
# not match (`dispatch_key = %s AND NOT ...`), the re-claim those it does: _rule_params().
_RECLAIMABLE = "(status = %s OR (status = %s AND updated_at < CASE WHEN mode = %s THEN %s ELSE %s END))"
# One text per statement; {rows} and {async_commit} are the vendor's part, filled in below.
_STATEMENTS = {
    "insert": f"INSERT INTO {_TABLE} ({', '.join(_COLUMNS)}) {{rows}} "
    "ON CONFLICT (dispatch_key) DO NOTHING RETURNING id",
    "count_duplicate": f"UPDATE {_TABLE} SET duplicate_ticks = duplicate_ticks + 1{{async_commit}} "
    f"WHERE dispatch_key = %s AND NOT {_RECLAIMABLE} RETURNING id, status, mode, event_ids",
    "close": f"UPDATE {_TABLE} SET status = %s, latency_ms = %s, error = %s, updated_at = %s{{async_commit}} "
    "WHERE id = %s",
}
# PostgreSQL turns synchronous_commit off from within the statement: a FROM of the
# UPDATE, the SELECT the INSERT takes its row from. SQLite has no such setting.
_PLACEHOLDERS = ", ".join(["%s"] * len(_COLUMNS))
_ASYNC_COMMIT = "(SELECT set_config('synchronous_commit', 'off', true)) AS async_commit"
_VENDOR_PARTS = {
    "postgresql": {"rows": f"SELECT {_PLACEHOLDERS} FROM {_ASYNC_COMMIT}", "async_commit": f" FROM {_ASYNC_COMMIT}"},
    "sqlite": {"rows": f"VALUES ({_PLACEHOLDERS})", "async_commit": ""},
}
_SQL = {
    vendor: {name: text.format(**parts) for name, text in _STATEMENTS.items()}
    for vendor, parts in _VENDOR_PARTS.items()
}
# PostgreSQL also runs the insert and, only when it inserted nothing, the duplicate count
# as one statement: both see the snapshot taken at the statement's start, so a row
# inserted by a tick that committed after it is neither claimed nor counted here (no
# row comes back).
_PG = _SQL["postgresql"]
_PG["claim_or_count"] = (
    f"WITH inserted AS ({_PG['insert']}), "
    f"counted AS ({_PG['count_duplicate'].replace('WHERE ', 'WHERE NOT EXISTS (SELECT FROM inserted) AND ', 1)}) "
    "SELECT 'claimed', id, NULL, NULL, NULL FROM inserted "
    "UNION ALL SELECT 'duplicate', id, status, mode, event_ids FROM counted"
)


def _execute(name: str, params: list[Any]) -> Any:
    """Run one of the statements above; return the cursor's first row (None without one)."""
    with connection.cursor() as cursor:
        cursor.execute(_SQL[connection.vendor][name], params)
        return cursor.fetchone() if cursor.description else None


def _insert_params(window: DispatchWindow) -> list[Any]:
    return [field.get_db_prep_save(getattr(window, field.attname), connection) for field in _FIELDS]


def _insert_unless_taken(window: DispatchWindow) -> int | None:
    """Insert the window's row and return its id; None when its dispatch key is taken.

    The unique constraint on dispatch_key decides, in one statement: of any number
    of ticks inserting the same key at once, exactly one gets an id back.
    """
    row = _execute("insert", _insert_params(window))
    return None if row is None else int(row[0])


def _rule_params(dispatch_key: str, *, now: datetime) -> list[Any]:
    """Return the parameters of `dispatch_key = %s AND [NOT] _RECLAIMABLE` at `now`."""
    ops = connection.ops
    return [
        dispatch_key,
        Status.DISPATCH_FAILED,
        Status.PENDING,
        Mode.DISPATCH,
        ops.adapt_datetimefield_value(now - stale_after(Mode.DISPATCH)),
        ops.adapt_datetimefield_value(now - stale_after(Mode.INLINE)),
    ]


def _count_duplicate(dispatch_key: str, *, now: datetime) -> DispatchWindow | None:
    """Count a duplicate tick and return the window's status, mode and event ids; None if re-claimable."""
    row = _execute("count_duplicate", _rule_params(dispatch_key, now=now))
    return None if row is None else _duplicate_window(dispatch_key, row)


def _duplicate_window(dispatch_key: str, row: tuple[Any, ...]) -> DispatchWindow:
    """The window a duplicate tick answers with, from (id, status, mode, event_ids)."""
    pk, status, mode, event_ids = row
    # Django has the drivers hand JSON back as text, for JSONField to decode.
    event_ids = json.loads(event_ids) if isinstance(event_ids, str) else event_ids
    return DispatchWindow(pk=pk, dispatch_key=dispatch_key, status=status, mode=mode, event_ids=event_ids)


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
    ops = connection.ops
    _execute("close", [status, latency_ms, error, ops.adapt_datetimefield_value(now), window.pk])
    window.status, window.latency_ms, window.error, window.updated_at = status, latency_ms, error, now
