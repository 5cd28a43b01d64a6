"""Each cron job's schedule: paused or not, which of its windows are due, and how far they are accounted for.

The reconciler (runs.reconcile) asks here which windows of a job have ended without a
row, and records them; the admin's Cron jobs page pauses and resumes a job here. Every
change of a job's state is a conditional update on its one `CronJobState` row
(created on demand), and the reconciler's watermark only moves forward.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import connection
from django.db.models import F, Min, Q
from django.utils.dateparse import parse_datetime

from core.notes import note_clean
from dispatch import keys
from dispatch.metrics import windows_count
from dispatch.models import CronJobState, DispatchWindow
from dispatch.registry import CronJob, get_cron_job
from dispatch.timetable import FixedWindows, Timetable

logger = logging.getLogger(__name__)

Status = DispatchWindow.Status
Source = DispatchWindow.Source
MIN_GRACE = timedelta(seconds=60)
# Window starts are whole minutes: a second after the watermark is past it and before the next.
AFTER = timedelta(seconds=1)
# Jobs whose last tick is looked up per statement (one index probe each).
LAST_TICK_CHUNK = 500


def job_state(job: str, *, now: datetime) -> CronJobState:
    """Return the job's state row, creating it (not paused, nothing reconciled) on first use."""
    state, _ = CronJobState.objects.get_or_create(job=job, defaults={"updated_at": now})
    return state


def cron_job_pause(*, job: str, user: AbstractBaseUser, note: str, now: datetime) -> bool:
    """Pause `job`: its cron ticks (and catch-up) record their windows `paused` until it is resumed.

    Return False when it was already paused (nothing changes). Raise ValueError for
    an unknown job, or a note that is empty or too long: a pause must say why.
    """
    note = note_clean(note, missing="a note is required: say why the job is paused, and until when")
    _known(job)
    job_state(job, now=now)
    paused = CronJobState.objects.filter(job=job, paused=False).update(
        paused=True, paused_at=now, paused_by=user, pause_note=note, updated_at=now
    )
    if paused:
        logger.warning("cron job paused", extra={"action": "cron_pause", "job": job, "user": user.get_username()})
    return bool(paused)


def cron_job_resume(*, job: str, user: AbstractBaseUser, now: datetime) -> bool:
    """Resume `job` from its next tick; return False when it was not paused."""
    _known(job)
    resumed = CronJobState.objects.filter(job=job, paused=True).update(
        paused=False, resumed_at=now, resumed_by=user, updated_at=now
    )
    if resumed:
        logger.warning("cron job resumed", extra={"action": "cron_resume", "job": job, "user": user.get_username()})
    return bool(resumed)


def _known(job: str) -> None:
    if get_cron_job(job) is None:
        raise ValueError(f"unknown cron job {job!r}")


def last_due(job: CronJob, *, now: datetime, grace_windows: int, calendar_grace: timedelta) -> datetime:
    """Return the start of the job's last window whose tick is overdue at `now` (it may or may not have come).

    A fixed window's tick may come at any time in the window: it is overdue once the
    window has ended and `grace_windows` more (at least 60 s). A calendar window's tick
    is due at its fire time: it is overdue `calendar_grace` after it, so a daily job's
    missing tick shows within minutes, not at the end of its day.
    """
    timetable = job.timetable
    if isinstance(timetable, FixedWindows):
        step = timedelta(seconds=timetable.seconds)
        grace = max(step * grace_windows, MIN_GRACE)
        return timetable.window_of(now - grace - step)
    return timetable.calendar.at_or_before(now - max(calendar_grace, MIN_GRACE))


@dataclass(frozen=True)
class Due:
    """The windows of a job that are overdue and not yet accounted for."""

    starts: list[datetime]  # oldest first, every window from the first due to the last
    through: datetime | None  # the start of the last window looked at (the next watermark), None: none due


def due_windows(job: CronJob, state: CronJobState, *, now: datetime, lookback: timedelta, last: datetime) -> Due:
    """Return the windows of `job` up to `last` that should have a row by now and are past its watermark.

    Never before `now - lookback`, nor before the job's first cron-sourced window (a
    job the cron service never called has no windows due), nor before the job was
    (re-)registered with its current schedule (`schedule_since`). The windows are the
    current schedule's: after a change of schedule they realign on it.
    """
    if state.first_cron_window is None:
        return Due(starts=[], through=None)
    bounds = [state.first_cron_window, now - lookback]
    if state.schedule_since is not None:
        bounds.append(state.schedule_since)
    if state.reconciled_through is not None:
        bounds.append(state.reconciled_through + AFTER)
    starts = job.timetable.between(max(bounds), last)
    return Due(starts=starts, through=starts[-1] if starts else None)


def first_cron_window(job: CronJob, state: CronJobState) -> datetime | None:
    """Return (and remember) the start of the job's first cron-sourced window; None while it has none."""
    if state.first_cron_window is not None:
        return state.first_cron_window
    first = DispatchWindow.objects.filter(job=job.name, source=Source.CRON).aggregate(first=Min("window_start"))
    if first["first"] is None:
        return None
    CronJobState.objects.filter(pk=state.pk, first_cron_window__isnull=True).update(first_cron_window=first["first"])
    state.first_cron_window = first["first"]
    return state.first_cron_window


@dataclass(frozen=True)
class Gaps:
    """The due windows without a row under their own key, and those a tick (not the reconciler) claimed."""

    missing: list[datetime]
    ticked: list[datetime]


def gaps(job: CronJob, due: Due) -> Gaps:
    """Return the due windows without a row, and those a tick had (one indexed range query)."""
    if not due.starts:
        return Gaps(missing=[], ticked=[])
    held = dict(
        DispatchWindow.objects.filter(
            job=job.name, window_start__gte=due.starts[0], window_start__lte=due.starts[-1]
        ).values_list("dispatch_key", "source")
    )
    keyed = [(start, held.get(keys.dispatch_key(job.name, start))) for start in due.starts]
    return Gaps(
        missing=[start for start, source in keyed if source is None],
        ticked=[start for start, source in keyed if source not in (None, Source.RECONCILER)],
    )


def windows_record(
    job: CronJob, starts: list[datetime], *, status: str, correlation_id: str, now: datetime, error: str = ""
) -> int:
    """Record each window of `starts` as `missed` or `paused` (source reconciler, with `error`) unless it has a row.

    Return how many this call wrote: a window a late tick (or another reconciler)
    wrote first is left as it is and not counted.
    """
    if not starts:
        return 0
    mode = DispatchWindow.Mode.PAUSED if status == Status.PAUSED else ""
    rows = [
        DispatchWindow(
            dispatch_key=keys.dispatch_key(job.name, start),
            job=job.name,
            status=status,
            mode=mode,
            source=Source.RECONCILER,
            correlation_id=correlation_id,
            window_start=start,
            window_seconds=job.timetable.window_seconds(start),
            requested_at=now,
            error=error,
            created_at=now,
            updated_at=now,
        )
        for start in starts
    ]
    DispatchWindow.objects.bulk_create(rows, ignore_conflicts=True)
    recorded = DispatchWindow.objects.filter(
        job=job.name, window_start__gte=starts[0], window_start__lte=starts[-1], correlation_id=correlation_id,
        status=status, source=Source.RECONCILER,
    ).count()  # fmt: skip
    windows_count(job.name, status, windows=recorded)
    return recorded


def watermark_advance(job: str, *, through: datetime, now: datetime) -> None:
    """Record that every window of `job` up to the one starting at `through` is accounted for (forward only)."""
    CronJobState.objects.filter(Q(reconciled_through__isnull=True) | Q(reconciled_through__lt=through), job=job).update(
        reconciled_through=through, updated_at=now
    )


def paused_between(state: CronJobState, start: datetime, *, timetable: Timetable) -> bool:
    """Return whether the window starting at `start` fell in the job's (current or last) pause."""
    if state.paused_at is None:
        return False
    paused_from = timetable.due_from(state.paused_at)
    if state.paused:
        return start >= paused_from
    return state.resumed_at is not None and paused_from <= start < state.resumed_at


def outage_note(state: CronJobState, *, outage_from: datetime | None, caught_up: int, now: datetime) -> None:
    """Record the outage still going on at the watermark (None: none) and its catch-ups so far."""
    if (state.outage_from, state.outage_caught_up) == (outage_from, caught_up):
        return
    CronJobState.objects.filter(pk=state.pk).update(outage_from=outage_from, outage_caught_up=caught_up, updated_at=now)
    state.outage_from, state.outage_caught_up = outage_from, caught_up


def drift_record(*, job: str, now: datetime) -> None:
    """Count one cron tick of `job` that came off its schedule (two statements at most: only drift pays them)."""
    counted = CronJobState.objects.filter(job=job).update(drift_ticks=F("drift_ticks") + 1, last_drift_at=now)
    if not counted:
        job_state(job, now=now)
        CronJobState.objects.filter(job=job).update(drift_ticks=F("drift_ticks") + 1, last_drift_at=now)


def last_cron_ticks(jobs: Sequence[str]) -> Iterator[tuple[str, datetime]]:
    """Yield (job, when its newest cron-sourced window opened) for each job the cron service has called.

    Only the cron service's ticks count: the reconciler's rows (missed, caught up) and
    an operator's must not make a silent cron service look alive. A cron tick claims the
    window of its own moment, so a job's newest cron window by window start is also its
    newest by creation: each job's answer is read down the (job, window start) index from
    its newest window to its newest cron one, not over all its rows. LAST_TICK_CHUNK jobs
    per statement.
    """
    table = DispatchWindow._meta.db_table
    field = DispatchWindow._meta.get_field("created_at")
    for start in range(0, len(jobs), LAST_TICK_CHUNK):
        names = jobs[start : start + LAST_TICK_CHUNK]
        values = ", ".join(["(%s)"] * len(names))
        # VALUES names its column column1 on PostgreSQL and SQLite alike.
        sql = (
            f"SELECT column1, (SELECT created_at FROM {table} WHERE job = column1 AND source = %s "
            f"ORDER BY window_start DESC LIMIT 1) "
            f"FROM (VALUES {values}) AS names"
        )
        with connection.cursor() as cursor:
            cursor.execute(sql, [Source.CRON, *names])
            rows = cursor.fetchall()
        for job, opened in rows:
            if opened is not None:
                yield job, field.to_python(_converted(opened))


def _converted(value: object) -> object:
    """Return SQLite's text timestamp (naive UTC) as the ORM reads it; PostgreSQL's driver gives a datetime."""
    if isinstance(value, str) and (parsed := parse_datetime(value)) is not None:
        value = parsed
    if isinstance(value, datetime) and value.tzinfo is None:  # SQLite's converter of a declared column: naive UTC
        return value.replace(tzinfo=UTC)
    return value
