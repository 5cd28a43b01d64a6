"""Back-filling a range of a cron job's past windows, each run exactly as a tick would (docs/cron.md).

`dispatch_tick JOB --from T1 --to T2` and the admin's Cron jobs page plan here, then
run. A plan lists every window of the job starting from T1 to T2 (the past only, at
most MAX_WINDOWS of them); a window already handled (enqueued, inline, paused,
abandoned, or pending: a tick has it) is skipped, and the others (no row, `missed`,
`dispatch_failed`) are ticked one by one as an operator's tick (source `manual`):
same key, same event ids, the job's mode. The admin's back-fill runs inside one web
request: it starts no window once INLINE_TIME_BUDGET_SECONDS are spent and says which
it did not reach; the command's is not bounded (docs/operations.md).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from dispatch import keys
from dispatch.models import DispatchWindow
from dispatch.registry import CronJob
from dispatch.services import TickResult, dispatch_tick

MAX_WINDOWS = 100
Status = DispatchWindow.Status
# What an operator's tick runs: no tick came, or its publish failed.
RUNNABLE = frozenset({"", Status.MISSED, Status.DISPATCH_FAILED})


@dataclass(frozen=True)
class PlannedWindow:
    """One window of the range, and what its row says ("" for none)."""

    start: datetime
    dispatch_key: str
    status: str

    @property
    def runs(self) -> bool:
        return self.status in RUNNABLE


@dataclass(frozen=True)
class BackfillRun:
    """What a back-fill ran: each tick's result, and the windows that run but were not reached (oldest first)."""

    ticks: list[TickResult]
    not_reached: list[PlannedWindow]


def backfill_plan(job: CronJob, *, first: datetime, last: datetime, now: datetime) -> list[PlannedWindow]:
    """Return the windows of `job` starting from `first` to `last`, oldest first, each with its row's status.

    Raise ValueError, saying what to type, for a range that ends in the future, holds a
    window older than WINDOWS_RETENTION_DAYS, is empty or backwards, or holds more than MAX_WINDOWS windows.
    """
    if last > now:
        raise ValueError("the range ends in the future: back-fill past windows only (--to now at the latest)")
    if first > last:
        raise ValueError("the range starts after it ends: give --from before --to")
    starts = job.timetable.between(first, last, limit=MAX_WINDOWS + 1)
    if not starts:
        raise ValueError(f"no window of {job.name} starts in that range ({job.timetable.describe()})")
    days = settings.WINDOWS_RETENTION_DAYS
    if starts[0] < now - timedelta(days=days):
        # Maintenance prunes windows after the retention: whether such a window ran is no longer recorded.
        raise ValueError(
            f"the range's first window ({starts[0]:%Y-%m-%dT%H:%M}) is older than WINDOWS_RETENTION_DAYS={days} days: "
            "the ledger no longer records whether it ran, so back-filling it could run it twice. Back-fill a more "
            "recent range"
        )
    if len(starts) > MAX_WINDOWS:
        raise ValueError(
            f"more than {MAX_WINDOWS} windows of {job.name} start in that range: back-fill at most {MAX_WINDOWS} "
            "at a time (a shorter range)"
        )
    names = [keys.dispatch_key(job.name, start) for start in starts]
    statuses = dict(DispatchWindow.objects.filter(dispatch_key__in=names).values_list("dispatch_key", "status"))
    return [PlannedWindow(start, name, statuses.get(name, "")) for start, name in zip(starts, names, strict=True)]


def backfill_run(
    job: CronJob,
    plan: list[PlannedWindow],
    *,
    source: str,
    correlation_id: str,
    now: datetime,
    params: dict[str, Any] | None = None,
    budget_seconds: float | None = None,
) -> BackfillRun:
    """Tick each window of `plan` that runs, oldest first, as a tick of `source`; return what ran and what did not.

    With `budget_seconds` (a web request's bound) no window is started once that much
    time has passed since the first: the others are returned as not reached. The
    window started last may still take its own inline budget.
    """
    runnable = [window for window in plan if window.runs]
    deadline = None if budget_seconds is None else time.monotonic() + budget_seconds
    ticks: list[TickResult] = []
    for index, window in enumerate(runnable):
        if deadline is not None and time.monotonic() >= deadline:
            return BackfillRun(ticks=ticks, not_reached=runnable[index:])
        ticks.append(
            dispatch_tick(
                job=job, now=now, source=source, correlation_id=correlation_id, params=params, at=window.start
            )
        )
    return BackfillRun(ticks=ticks, not_reached=[])
