"""Claiming and closing dispatch windows: the database decides which tick runs a window."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connection

from dispatch.exceptions import ClaimLost
from dispatch.models import DispatchWindow

logger = logging.getLogger(__name__)

Status = DispatchWindow.Status
Mode = DispatchWindow.Mode


@dataclass(frozen=True)
class Claim:
    """The window row and whether this tick won it (else it is a duplicate).

    A won claim's window carries its id and its `claim` number (the fence); a
    duplicate's, the window's status, mode and event ids.
    """

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

    The claim is stamped, and a pending window judged stale, on the database's
    clock: `now` (the tick's time, read before its connection may have waited) is
    recorded as `requested_at` only. Each claim takes the next `claim` number, the
    fence that `window_set_mode` and `window_close` check.
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
        claim=1,
        created_at=now,
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
        row = _execute("insert", [*_insert_params(window), *_clock_params(now)])
        if row is not None:
            window.pk = row[0]
            return Claim(window=window, won=True)
    duplicate = _execute("count_duplicate", _rule_params(dispatch_key, now=now))
    if duplicate is not None:
        return Claim(window=_duplicate_window(dispatch_key, duplicate), won=False)
    # The window's publish failed, or its tick died: re-claim it, if this tick is first
    # (the update's condition is the re-claimable rule, so only one tick can match).
    fields = [Status.PENDING, mode, source, correlation_id, _datetime(now), publishing, _event_ids(event_ids)]
    row = _execute("reclaim", [*fields, int(publishing), *_clock_params(now), *_rule_params(dispatch_key, now=now)])
    if row is None:
        # Another tick re-claimed it first: this one is a duplicate of that one.
        return Claim(window=_duplicate_window(dispatch_key, _execute("count", [dispatch_key])), won=False)
    window.pk, window.claim = row
    logger.info(
        "window re-claimed",
        extra={"action": "window_claim", "dispatchKey": dispatch_key, "mode": mode, "claim": window.claim},
    )
    return Claim(window=window, won=True)


# The claim, the duplicate count and the close run on every tick, so they are single
# statements (the ORM has no INSERT ... ON CONFLICT ... RETURNING, nor UPDATE ... RETURNING).
#
# Window bookkeeping is idempotent by design, so on PostgreSQL these statements commit
# without waiting for the WAL flush: synchronous_commit is turned off for each one's
# own transaction, from within the statement (no extra round trip). A database crash
# that loses a window row only lets a later tick claim the window again and re-publish
# the same event ids, which Inngest deduplicates; the run ledger, committed
# synchronously, stops any second run of the window's work, inline or in Inngest.
#
# `updated_at` is the database's clock (PostgreSQL's clock_timestamp()): every writer
# stamps it, and the stale bound is measured against it, so how long a tick waited
# before its statement (for a connection, for the CPU) never makes a live claim look
# dead. SQLite, one machine and one writer, takes the tick's `now` instead.
_TABLE = DispatchWindow._meta.db_table
_COLUMNS = (
    "dispatch_key", "job", "status", "mode", "source", "correlation_id", "window_start", "window_seconds",
    "requested_at", "event_ids", "publish_attempts", "duplicate_ticks", "latency_ms", "error", "claim", "created_at",
)  # fmt: skip
_FIELDS: list[Any] = [DispatchWindow._meta.get_field(name) for name in _COLUMNS]
# The re-claimable rule, written once: the publish failed, or the window sat `pending` past
# its mode's stale bound (its tick died). The duplicate count takes the windows it does
# not match (`dispatch_key = %s AND NOT ...`), the re-claim those it does: _rule_params().
_RECLAIMABLE = (
    "(status = %s OR (status = %s AND updated_at < CASE WHEN mode = %s THEN {stale_before} ELSE {stale_before} END))"
)
_COUNT = f"UPDATE {_TABLE} SET duplicate_ticks = duplicate_ticks + 1{{async_commit}} WHERE dispatch_key = %s"
_DUPLICATE = "RETURNING id, status, mode, event_ids"
# One text per statement; {rows}, {async_commit}, {clock} and {stale_before} are the vendor's part, filled in below.
# A window is written only under the claim that is still its latest (`claim = %s`): a tick
# whose window was re-claimed by a later tick can no longer change it.
_STATEMENTS = {
    "insert": f"INSERT INTO {_TABLE} ({', '.join(_COLUMNS)}, updated_at) {{rows}} "
    "ON CONFLICT (dispatch_key) DO NOTHING RETURNING id",
    "count_duplicate": f"{_COUNT} AND NOT {_RECLAIMABLE} {_DUPLICATE}",
    "count": f"{_COUNT} {_DUPLICATE}",
    "reclaim": f"UPDATE {_TABLE} SET status = %s, mode = %s, source = %s, correlation_id = %s, requested_at = %s, "
    "error = '', event_ids = CASE WHEN %s THEN %s ELSE event_ids END, publish_attempts = publish_attempts + %s, "
    "claim = claim + 1, updated_at = {clock}{async_commit} "
    f"WHERE dispatch_key = %s AND {_RECLAIMABLE} RETURNING id, claim",
    "set_mode": f"UPDATE {_TABLE} SET mode = %s, updated_at = {{clock}}{{async_commit}} "
    "WHERE id = %s AND claim = %s RETURNING id",
    "close": f"UPDATE {_TABLE} SET status = %s, latency_ms = %s, error = %s, updated_at = {{clock}}{{async_commit}} "
    "WHERE id = %s AND claim = %s RETURNING id",
}
# PostgreSQL turns synchronous_commit off from within the statement: a FROM of the
# UPDATE, the SELECT the INSERT takes its row from. SQLite has no such setting.
_PLACEHOLDERS = ", ".join(["%s"] * len(_COLUMNS))
_ASYNC_COMMIT = "(SELECT set_config('synchronous_commit', 'off', true)) AS async_commit"
_VENDOR_PARTS = {
    "postgresql": {
        "rows": f"SELECT {_PLACEHOLDERS}, clock_timestamp() FROM {_ASYNC_COMMIT}",
        "async_commit": f" FROM {_ASYNC_COMMIT}",
        "clock": "clock_timestamp()",
        "stale_before": "clock_timestamp() - make_interval(secs => %s)",
    },
    "sqlite": {"rows": f"VALUES ({_PLACEHOLDERS}, %s)", "async_commit": "", "clock": "%s", "stale_before": "%s"},
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


def _datetime(value: datetime) -> Any:
    return connection.ops.adapt_datetimefield_value(value)


def _event_ids(event_ids: list[str]) -> Any:
    return DispatchWindow._meta.get_field("event_ids").get_db_prep_save(event_ids, connection)


def _clock_params(now: datetime) -> list[Any]:
    """Return the parameters of {clock}: none on PostgreSQL (the database's clock), `now` on SQLite."""
    return [] if connection.vendor == "postgresql" else [_datetime(now)]


def _rule_params(dispatch_key: str, *, now: datetime) -> list[Any]:
    """Return the parameters of `dispatch_key = %s AND [NOT] _RECLAIMABLE`.

    Each mode's stale bound is seconds before the database's clock on PostgreSQL, an
    instant before `now` on SQLite.
    """
    bounds = (stale_after(Mode.DISPATCH), stale_after(Mode.INLINE))
    if connection.vendor == "postgresql":
        stale_before = [bound.total_seconds() for bound in bounds]
    else:
        stale_before = [_datetime(now - bound) for bound in bounds]
    return [dispatch_key, Status.DISPATCH_FAILED, Status.PENDING, Mode.DISPATCH, *stale_before]


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


def _lost(window: DispatchWindow) -> ClaimLost:
    return ClaimLost(claim=window.claim, window=DispatchWindow.objects.get(pk=window.pk))
