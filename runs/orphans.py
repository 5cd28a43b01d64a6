"""What the reconciler recovers: windows a dead tick left `pending`, failed publishes, runs without progress.

- A window `pending` past its stale bound (dispatch.windows.stale_after): in dispatch
  mode it is claimed again through the dispatcher's own re-claim and its events
  re-published (the same ids: Inngest runs them once); in an inline mode (or when
  it is older than RECONCILE_LOOKBACK, or its job is gone) it becomes `abandoned`,
  its error saying what the run ledger knows of its units. A live tick that closes
  it later still wins: `abandoned` does not take the claim.
- A `dispatch_failed` window is re-published after RECONCILE_REPUBLISH_BACKOFF_SECONDS,
  doubling each attempt, until it has made RECONCILE_REPUBLISH_MAX_ATTEMPTS; then it
  is left failed, with an error log line.
- The reconciler only ever publishes: when a window's job runs inline now (the
  rollback lever, force-inline, no event key, outside the canary), the window is
  left as it is, counted `notRepublished` and logged with the reason; a failed
  re-publish does not fall back to inline. Running it inline here would run old
  windows inside whatever request runs the reconciler (an inline tick's
  maintenance, which reconciles again: nested as deep as there are such windows).
- A run `running` without progress for longer than its bound
  (runs.reconcile_settings.run_bound) fails with `abandoned: no progress since …` and
  one dead letter, which can be requeued.

After a failed publish no more windows are re-published in that run: the others
would most likely fail the same way, each after waiting out the publish bound.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Max
from django.db.models.functions import Coalesce, Greatest

from core.timefmt import iso_utc
from dispatch import keys
from dispatch.events import event_data
from dispatch.exceptions import NotPublished
from dispatch.metrics import windows_count
from dispatch.models import DispatchWindow
from dispatch.registry import CronJob, get_cron_job, job_of_function
from dispatch.services import TickResult, dispatch_tick
from dispatch.windows import stale_pending
from runs import ledger
from runs.models import FunctionRun
from runs.reconcile_settings import MIN_RUN_BOUND, lookback, run_bound

logger = logging.getLogger(__name__)

Status = DispatchWindow.Status
Mode = DispatchWindow.Mode
RECONCILER = DispatchWindow.Source.RECONCILER
BATCH = 200
PUBLISH_FAILED = 503


def recover(*, now: datetime) -> dict[str, int]:
    """Recover every orphan found now; return how many windows were re-published (or failed to be, or were not
    tried), abandoned, given up."""
    publishing = _Publishing()
    abandoned = _pending_windows(now=now, publishing=publishing)
    gave_up = _failed_windows(now=now, publishing=publishing)
    return {
        "republished": publishing.republished,
        "republishFailed": int(publishing.failed),
        "notRepublished": publishing.not_republished,
        "abandonedWindows": abandoned,
        "gaveUp": gave_up,
        "abandonedRuns": _stuck_runs(now=now),
    }


class _Publishing:
    """The run's re-publishes: how many went through, how many were not tried (the job runs inline now), and
    whether one failed (then no more are tried: at most one fails per run)."""

    republished = 0
    not_republished = 0
    failed = False

    def tick(self, window: DispatchWindow, job: CronJob, *, now: datetime) -> TickResult | None:
        """Publish the window's own key again, with the events it was claimed with.

        Return None, leaving the window as it is, once a publish failed or when its job runs inline now.
        """
        if self.failed:
            return None
        try:
            result = dispatch_tick(
                job=_narrowed(job, window),
                now=now,
                source=RECONCILER,
                correlation_id=window.correlation_id,
                at=window.window_start,
                dispatch_key=window.dispatch_key,
                publish_only=True,
            )
        except NotPublished as refused:
            self.not_republished += 1
            logger.warning(
                "orphaned window not re-published: its job runs inline now, and the reconciler only publishes",
                extra={
                    "action": "reconcile",
                    "dispatchKey": window.dispatch_key,
                    "status": window.status,
                    "mode": refused.mode,
                    "reason": refused.reason,
                },
            )
            return None
        self.failed = result.status_code == PUBLISH_FAILED
        if self.failed:
            logger.warning(
                "orphaned window's re-publish failed: it is re-published with backoff",
                extra={"action": "reconcile", "dispatchKey": window.dispatch_key, "error": result.body.get("error")},
            )
        elif not result.body["duplicate"]:
            self.republished += 1
            logger.warning(
                "orphaned window re-published",
                extra={"action": "reconcile", "dispatchKey": window.dispatch_key, "mode": result.body["mode"]},
            )
        return result


def _pending_windows(*, now: datetime, publishing: _Publishing) -> int:
    """Re-publish (dispatch) or abandon (inline) each window pending past its stale bound; return abandoned."""
    horizon = now - lookback()
    abandoned = 0
    for window in DispatchWindow.objects.filter(stale_pending(now=now)).order_by("updated_at")[:BATCH]:
        job = get_cron_job(window.job)
        if job is None:
            abandoned += _abandon(window, job, now=now, why="its cron job is no longer registered")
        elif window.mode != Mode.DISPATCH:
            abandoned += _abandon(window, job, now=now, why="its inline tick stopped after the claim")
        elif window.window_start < horizon:
            abandoned += _abandon(window, job, now=now, why="its tick stopped before the publish, before the lookback")
        else:
            publishing.tick(window, job, now=now)
    return abandoned


def _abandon(window: DispatchWindow, job: CronJob | None, *, now: datetime, why: str) -> int:
    """Mark the window `abandoned` unless its tick (or another reconciler) moved it meanwhile; return 1 or 0."""
    runs = dict(FunctionRun.objects.filter(dispatch_key=window.dispatch_key).values_list("function_id", "status"))
    names = [unit.function_id for unit in job.units] if job is not None else sorted(runs)
    verdict = ", ".join(f"{name} {runs.get(name, 'not started')}" for name in names) or "none"
    error = f"abandoned: {why} (pending since {iso_utc(window.updated_at)}); runs: {verdict}"
    changed = DispatchWindow.objects.filter(pk=window.pk, status=Status.PENDING, claim=window.claim).update(
        status=Status.ABANDONED, error=error, updated_at=now
    )
    if changed:
        windows_count(window.job, Status.ABANDONED)
        extra = {"action": "reconcile", "dispatchKey": window.dispatch_key, "error": error}
        logger.error("window abandoned", extra=extra)
    return changed


def _failed_windows(*, now: datetime, publishing: _Publishing) -> int:
    """Re-publish each failed window whose backoff has passed; return how many were given up on."""
    bound = settings.RECONCILE_REPUBLISH_MAX_ATTEMPTS
    gave_up = 0
    for window in DispatchWindow.objects.filter(
        status=Status.DISPATCH_FAILED, publish_attempts__lt=bound, window_start__gte=now - lookback()
    ).order_by("updated_at")[:BATCH]:
        if publishing.failed:
            break
        job = get_cron_job(window.job)
        if job is None or window.updated_at > now - backoff(window.publish_attempts):
            continue
        result = publishing.tick(window, job, now=now)
        if result is None:
            continue
        attempts = DispatchWindow.objects.filter(pk=window.pk).values_list("publish_attempts", flat=True).first()
        if result.status_code == PUBLISH_FAILED and (attempts or 0) >= bound:
            gave_up += 1
            logger.error(
                "window left dispatch_failed: its publish failed on every attempt",
                extra={"action": "reconcile", "dispatchKey": window.dispatch_key, "publishAttempts": attempts},
            )
    return gave_up


def backoff(attempts: int) -> timedelta:
    """Return how long after its last attempt a failed window is re-published: the base, doubled each attempt."""
    return timedelta(seconds=settings.RECONCILE_REPUBLISH_BACKOFF_SECONDS * 2 ** max(attempts - 1, 0))


def _narrowed(job: CronJob, window: DispatchWindow) -> CronJob:
    """Return the job narrowed to the units whose events the window was claimed with (a requeue's one unit)."""
    units = tuple(unit for unit in job.units if keys.event_id(unit.event, window.dispatch_key) in window.event_ids)
    return replace(job, units=units) if units else job


def _stuck_runs(*, now: datetime) -> int:
    """Fail each run that made no progress for longer than its bound, with its dead letter; return how many."""
    abandoned = 0
    # Each run's last progress (its start, an attempt starting or ending: ledger.last_progress) in one query,
    # so that the longest idle come first and live runs, however old, never fill the batch.
    idle = (
        FunctionRun.objects.filter(status=FunctionRun.Status.RUNNING, started_at__lt=now - MIN_RUN_BOUND)
        .annotate(
            progress=Greatest(
                "started_at",
                Coalesce(Max("attempt_rows__started_at"), "started_at"),
                Coalesce(Max("attempt_rows__finished_at"), "started_at"),
            )
        )
        .filter(progress__lt=now - MIN_RUN_BOUND)
        .order_by("progress")
    )
    for run in idle[:BATCH]:
        idle_since = run.progress
        if idle_since >= now - run_bound(run.function_id, max_attempts=run.max_attempts):
            continue
        if ledger.run_abandon(run_pk=run.pk, idle_since=idle_since, payload=_event(run), now=now) is not None:
            abandoned += 1
    return abandoned


def _event(run: FunctionRun) -> dict[str, Any] | None:
    """Return the event the run was started by, as far as the ledger knows it (what a requeue re-publishes).

    Its params are not kept by the run ledger; the tenant is (the run's scope).
    """
    job = job_of_function(run.function_id)
    start = keys.key_window_start(run.dispatch_key, job=job.name) if job is not None else None
    if job is None or start is None:
        return None
    [unit] = [unit for unit in job.units if unit.function_id == run.function_id]
    params = {"tenant": run.scope} if run.scope != "global" and "tenant" in job.params else {}
    data = event_data(
        job=job,
        source=run.source or RECONCILER,
        now=run.started_at,
        dispatch_key=run.dispatch_key,
        correlation_id=run.correlation_id,
        window_start=start,
        window_seconds=job.timetable.window_seconds(start),
        params=params,
    )
    return {"event": unit.event, "data": data}
