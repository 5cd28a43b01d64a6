"""The reconciler: every window of every registered cron job accounted for, and what went astray recovered.

For each job, from its watermark: every window that has ended (plus the grace) gets a
row. A window no tick came for is recorded `missed` (or `paused`, when the job was
paused then), or, as the job's catch-up policy says, claimed and dispatched exactly
like a tick (same key, same event ids, source `reconciler`). Then the orphans
(runs.orphans): windows left `pending` by a dead tick, windows whose publish failed,
runs that stopped making progress.

The reconciler only ever publishes. It runs inside other work (an inline tick's
maintenance, a worker's chores, a command), so it never runs a window inline: a
window to catch up whose job runs inline now is recorded `missed`, its error saying
why and what to run by hand. And a reconcile started inside a reconcile (in the same
context) does nothing.

It runs from maintenance, `manage.py reconcile`, standing workers (`run_jobs --loop`)
and, in dispatch mode, its own Inngest function on a cron schedule; any number at
once. The database decides: rows are written with `INSERT ... ON CONFLICT DO NOTHING`,
windows claimed through the dispatcher's one-winner claim, every transition is a
conditional update, and each run counts only what it wrote.
"""

from __future__ import annotations

import logging
import time
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings

from core.database import CONNECTION_ERRORS
from core.errors import one_line
from core.logcontext import bound_fields, log_context
from core.timefmt import iso_utc
from dispatch import keys, schedule
from dispatch.exceptions import NotPublished, RegistryError
from dispatch.models import DispatchWindow
from dispatch.registration import registration_check, registry_note
from dispatch.registry import CronJob, cron_jobs
from dispatch.services import dispatch_tick
from runs import orphans
from runs.catch_up import Outage, outages, to_catch_up
from runs.reconcile_settings import lookback

logger = logging.getLogger(__name__)

Status = DispatchWindow.Status
RECONCILER = DispatchWindow.Source.RECONCILER
NESTED = "nested: a reconcile is already running in this context"

# Set while a reconcile runs: one started beneath it (through an inline run's maintenance) does nothing.
_reconciling: ContextVar[bool] = ContextVar("reconciling", default=False)


@dataclass
class JobReport:
    """What one run did for one cron job."""

    missed: int = 0
    paused: int = 0
    caught_up: list[str] = field(default_factory=list)
    not_caught_up: int = 0  # of `missed`: windows the policy would catch up, recorded missed (the job runs inline)
    catch_up_failed: int = 0  # catch-ups whose publish failed (their windows are `dispatch_failed`)
    through: datetime | None = None
    error: str = ""

    def __bool__(self) -> bool:
        return bool(self.missed or self.paused or self.caught_up or self.catch_up_failed or self.error)

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"missed": self.missed, "paused": self.paused, "caughtUp": self.caught_up}
        if self.not_caught_up:
            body["notCaughtUp"] = self.not_caught_up
        if self.catch_up_failed:
            body["catchUpFailed"] = self.catch_up_failed
        if self.through is not None:
            body["through"] = iso_utc(self.through)
        if self.error:
            body["error"] = self.error
        return body


def reconcile(*, now: datetime) -> dict[str, Any]:
    """Account for every due window of every registered cron job, recover orphans; return a compact summary.

    Inside another reconcile (in the same context) do nothing: return {"skipped": NESTED}.
    """
    if _reconciling.get():
        logger.warning(
            "reconcile skipped: a reconcile is already running in this context", extra={"action": "reconcile"}
        )
        return {"skipped": NESTED}
    token = _reconciling.set(True)
    try:
        return _reconcile(now=now)
    finally:
        _reconciling.reset(token)


def _reconcile(*, now: datetime) -> dict[str, Any]:
    started = time.monotonic()
    # Inside a tick (maintenance run inline) its lines carry the tick's correlation id, like every other line.
    correlation_id = bound_fields().get("correlationId") or keys.correlation_id(None)
    with log_context(correlationId=correlation_id):
        jobs: dict[str, JobReport] = {}
        try:
            registered = list(cron_jobs().values())
        except RegistryError as exc:
            logger.error("reconcile: the cron registry is invalid", extra={"action": "reconcile", "error": str(exc)})
            registered = []
        else:
            registry_note([job.name for job in registered], now=now)
        for job in registered:
            jobs[job.name] = _reconcile_job(job, now=now, correlation_id=correlation_id)
        recovered = orphans.recover(now=now)
        summary: dict[str, Any] = {
            "missed": sum(report.missed for report in jobs.values()),
            "paused": sum(report.paused for report in jobs.values()),
            "caughtUp": sum(len(report.caught_up) for report in jobs.values()),
            "notCaughtUp": sum(report.not_caught_up for report in jobs.values()),
            "catchUpFailed": sum(report.catch_up_failed for report in jobs.values()),
            **recovered,
            "jobs": {name: report.as_json() for name, report in jobs.items() if report},
            "correlationId": correlation_id,
            "durationMs": round((time.monotonic() - started) * 1000),
        }
        trouble = any(
            summary[name]
            for name in ("missed", "catchUpFailed", "republishFailed", "abandonedWindows", "abandonedRuns", "gaveUp")
        )
        logger.log(logging.WARNING if trouble else logging.INFO, "reconciled", extra={"action": "reconcile", **summary})
    return summary


def _reconcile_job(job: CronJob, *, now: datetime, correlation_id: str) -> JobReport:
    """Record or catch up the job's due windows that have no row, then move its watermark past them."""
    report = JobReport()
    try:
        state = registration_check(job, schedule.job_state(job.name, now=now), now=now)
        if schedule.first_cron_window(job, state) is None:
            return report  # the cron service never called it: nothing is due yet
        last = schedule.last_due(
            job,
            now=now,
            grace_windows=settings.RECONCILE_GRACE_WINDOWS,
            calendar_grace=timedelta(seconds=settings.RECONCILE_CALENDAR_GRACE_SECONDS),
        )
        due = schedule.due_windows(job, state, now=now, lookback=lookback(), last=last)
        if due.through is None:
            return report
        found = schedule.gaps(job, due)
        paused = [start for start in found.missing if schedule.paused_between(state, start, timetable=job.timetable)]
        open_ = [start for start in found.missing if start not in paused]
        found_outages = [] if state.paused else outages(open_, found.ticked, state)
        plan = [(outage, to_catch_up(job, outage)) for outage in found_outages]
        catching_up = {start for _, starts in plan for start in starts}
        report.paused = schedule.windows_record(
            job, paused, status=Status.PAUSED, correlation_id=correlation_id, now=now
        )
        report.missed = schedule.windows_record(
            job, [start for start in open_ if start not in catching_up], status=Status.MISSED,
            correlation_id=correlation_id, now=now,
        )  # fmt: skip
        report.through, (outage_from, caught_up) = _catch_up_outages(
            job, plan, report, correlation_id=correlation_id, through=due.through, now=now
        )
        if not state.paused and (open_ or found.ticked):
            schedule.outage_note(state, outage_from=outage_from, caught_up=caught_up, now=now)
        schedule.watermark_advance(job.name, through=report.through, now=now)
    except CONNECTION_ERRORS:
        raise  # A database that cannot be reached is no one job's failure: the pass stops.
    except Exception as exc:  # One job's failure (a crashing catch-up, a bad setting) must not stop the others.
        logger.exception("reconcile of a cron job failed", extra={"action": "reconcile", "job": job.name})
        report.error = one_line(exc)
    return report


def _catch_up_outages(
    job: CronJob, plan: list[tuple[Outage, list[datetime]]], report: JobReport, *, correlation_id: str,
    through: datetime, now: datetime,
) -> tuple[datetime, tuple[datetime | None, int]]:  # fmt: skip
    """Catch up each outage's windows, oldest first; return the watermark, and the outage open at it (its first
    window, None for none, and its catch-ups so far).

    A publish that fails (the event API refused or timed out) stops here: the next
    windows would most likely wait out the publish bound and fail the same way. The
    failed window is `dispatch_failed` (re-published with backoff); the watermark stops
    at it, so the next pass catches up the rest, within the same outage's budget.
    """
    open_outage: tuple[datetime | None, int] = (None, 0)
    for outage, starts in plan:
        caught = 0
        for start in starts:
            if not _catch_up(job, start, report, correlation_id=correlation_id, now=now):
                report.catch_up_failed += 1
                return start, (outage.since, outage.caught_up_before + caught)
            caught += 1
        open_outage = (outage.since, outage.caught_up_before + caught) if outage.open else (None, 0)
    return through, open_outage


def _catch_up(job: CronJob, start: datetime, report: JobReport, *, correlation_id: str, now: datetime) -> bool:
    """Claim and dispatch the window as a tick would, unless a tick had it first; when the job runs inline now,
    record it `missed` instead, saying why. Return False when its publish failed."""
    try:
        result = dispatch_tick(
            job=job, now=now, source=RECONCILER, correlation_id=correlation_id, at=start, publish_only=True
        )
    except NotPublished as refused:
        error = (
            f"not caught up: {job.name} runs inline ({refused.reason}); the reconciler only publishes. "
            f"Run it by hand: python manage.py dispatch_tick {job.name} --at {iso_utc(start)}"
        )
        recorded = schedule.windows_record(
            job, [start], status=Status.MISSED, correlation_id=correlation_id, now=now, error=error
        )
        report.missed += recorded
        report.not_caught_up += recorded
        if recorded:
            extra = {"action": "reconcile", "dispatchKey": keys.dispatch_key(job.name, start), "error": error}
            logger.warning("missed window not caught up: its job runs inline now", extra=extra)
        return True
    body = result.body
    if result.status_code == orphans.PUBLISH_FAILED:
        extra = {"action": "reconcile", "dispatchKey": body["dispatchKey"], "error": body.get("error", "")}
        logger.warning("missed window's catch-up publish failed: it is re-published with backoff", extra=extra)
        return False
    if body["duplicate"]:
        return True
    logger.warning(
        "missed window caught up",
        extra={"action": "reconcile", "dispatchKey": body["dispatchKey"], "mode": body["mode"]},
    )
    report.caught_up.append(str(body["dispatchKey"]))
    return True
