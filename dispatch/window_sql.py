"""The SQL of a tick's window: claim, count a duplicate, re-claim, change of mode, close (dispatch.windows).

The claim, the duplicate count and the close run on every tick, so they are single
statements (the ORM has no INSERT ... ON CONFLICT ... RETURNING, nor UPDATE ... RETURNING).

Window bookkeeping is idempotent by design, so on PostgreSQL these statements commit
without waiting for the WAL flush: synchronous_commit is turned off for each one's
own transaction, from within the statement (no extra round trip). A database crash
that loses a window row only lets a later tick claim the window again and re-publish
the same event ids, which Inngest deduplicates; the run ledger, committed
synchronously, stops any second run of the window's work, inline or in Inngest.

`updated_at` is the database's clock (PostgreSQL's clock_timestamp()): every writer
stamps it, and the stale bound is measured against it, so how long a tick waited
before its statement (for a connection, for the CPU) never makes a live claim look
dead. SQLite, one machine and one writer, takes the tick's `now` instead.

A paused job's tick claims its window as `paused` (status and mode, no event ids, no
publish attempt): the claim and the re-claim read the job's state in the same
statement (`{state}`), so pausing costs a tick no round trip. The job is named to
that sub-select only for ticks the pause applies to (cron and the reconciler); the
others pass NULL, which names no job.
"""

from __future__ import annotations

from typing import Any

from core.sql import ASYNC_COMMIT
from dispatch.models import CronJobState, DispatchWindow, WindowMode, WindowStatus

TABLE = DispatchWindow._meta.db_table
COLUMNS = (
    "dispatch_key", "job", "status", "mode", "source", "correlation_id", "window_start", "window_seconds",
    "requested_at", "event_ids", "publish_attempts", "duplicate_ticks", "latency_ms", "error", "claim", "created_at",
    "lateness_ms",
)  # fmt: skip
FIELDS: list[Any] = [DispatchWindow._meta.get_field(name) for name in COLUMNS]
PAUSED = WindowStatus.PAUSED.value
assert WindowMode.PAUSED.value == PAUSED  # one literal serves both columns
# What a paused claim writes instead of the tick's own values ({empty_list}: the vendor's JSON literal).
_PAUSED_VALUES = {"status": f"'{PAUSED}'", "mode": f"'{PAUSED}'", "event_ids": "{empty_list}", "publish_attempts": "0"}
_STATE = (
    f"(SELECT EXISTS (SELECT 1 FROM {CronJobState._meta.db_table} WHERE job = %s AND paused) AS paused"
    "{async_commit_column}) AS state"
)
# The re-claimable rule, written once: the publish failed (or, for an operator's tick, no tick
# came: `missed`), or the window sat `pending` past its mode's stale bound (its tick died). The
# duplicate count takes the windows it does not match (`dispatch_key = %s AND NOT ...`), the
# re-claim those it does (see dispatch.windows._rule_params).
_RECLAIMABLE = (
    "(status IN (%s, %s) OR "
    "(status = %s AND updated_at < CASE WHEN mode = %s THEN {stale_before} ELSE {stale_before} END))"
)
_COUNT = f"UPDATE {TABLE} SET duplicate_ticks = duplicate_ticks + 1{{async_commit}} WHERE dispatch_key = %s"
_DUPLICATE = "RETURNING id, status, mode, event_ids"
_VALUES = ", ".join(
    f"CASE WHEN state.paused THEN {_PAUSED_VALUES[column]} ELSE %s END" if column in _PAUSED_VALUES else "%s"
    for column in COLUMNS
)
# One text per statement; {async_commit}, {clock}, {stale_before}, {state} and {empty_list} are the vendor's
# part, filled in below. A window is written only under the claim that is still its latest (`claim = %s`): a
# tick whose window was re-claimed by a later tick can no longer change it.
_STATEMENTS = {
    # Parameters: the columns, {clock}, then the job to check for a pause (or NULL).
    "insert": f"INSERT INTO {TABLE} ({', '.join(COLUMNS)}, updated_at) SELECT {_VALUES}, {{clock}} FROM {_STATE} "
    "WHERE true ON CONFLICT (dispatch_key) DO NOTHING RETURNING id, status",
    "count_duplicate": f"{_COUNT} AND NOT {_RECLAIMABLE} {_DUPLICATE}",
    "count": f"{_COUNT} {_DUPLICATE}",
    # Parameters: status, mode, the re-claiming tick's source, correlation id, requested at, publishing, event ids,
    # publishing (0/1), {clock}, the job to check for a pause (or NULL), then the rule's. The first claim's
    # source stays.
    "reclaim": f"UPDATE {TABLE} SET status = CASE WHEN state.paused THEN '{PAUSED}' ELSE %s END, "
    f"mode = CASE WHEN state.paused THEN '{PAUSED}' ELSE %s END, reclaimed_by = %s, correlation_id = %s, "
    "requested_at = %s, error = '', "
    "event_ids = CASE WHEN state.paused THEN {empty_list} WHEN %s THEN %s ELSE event_ids END, "
    "publish_attempts = publish_attempts + CASE WHEN state.paused THEN 0 ELSE %s END, "
    f"claim = claim + 1, updated_at = {{clock}} FROM {_STATE} "
    f"WHERE dispatch_key = %s AND {_RECLAIMABLE} RETURNING id, claim, status, source",
    "set_mode": f"UPDATE {TABLE} SET mode = %s, updated_at = {{clock}}{{async_commit}} "
    "WHERE id = %s AND claim = %s RETURNING id",
    "close": f"UPDATE {TABLE} SET status = %s, latency_ms = %s, error = %s, updated_at = {{clock}}{{async_commit}} "
    "WHERE id = %s AND claim = %s RETURNING id",
}
# PostgreSQL turns synchronous_commit off from within the statement: a FROM of the
# UPDATE, a column of the row the INSERT takes its values from. SQLite has no such setting.
_VENDORS = {
    "postgresql": {
        "async_commit": f" FROM {ASYNC_COMMIT}",
        "async_commit_column": ", set_config('synchronous_commit', 'off', true) AS async_commit",
        "clock": "clock_timestamp()",
        "stale_before": "clock_timestamp() - make_interval(secs => %s)",
        "empty_list": "'[]'::jsonb",
    },
    "sqlite": {
        "async_commit": "",
        "async_commit_column": "",
        "clock": "%s",
        "stale_before": "%s",
        "empty_list": "'[]'",
    },
}


def _expand(text: str, parts: dict[str, str]) -> str:
    """Fill in the vendor's parts (by name: the statements hold `%s` and JSON, so no str.format)."""
    for name, value in parts.items():
        text = text.replace("{" + name + "}", value)
    return text


SQL = {vendor: {name: _expand(text, part) for name, text in _STATEMENTS.items()} for vendor, part in _VENDORS.items()}
# PostgreSQL also runs the insert and, only when it inserted nothing, the duplicate count
# as one statement: both see the snapshot taken at the statement's start, so a row
# inserted by a tick that committed after it is neither claimed nor counted here (no
# row comes back).
_PG = SQL["postgresql"]
_PG["claim_or_count"] = (
    f"WITH inserted AS ({_PG['insert']}), "
    f"counted AS ({_PG['count_duplicate'].replace('WHERE ', 'WHERE NOT EXISTS (SELECT FROM inserted) AND ', 1)}) "
    "SELECT 'claimed', id, status, NULL, NULL FROM inserted "
    "UNION ALL SELECT 'duplicate', id, status, mode, event_ids FROM counted"
)
