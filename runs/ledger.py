"""The run ledger: one FunctionRun per (function, window), its attempts, its terminal failure.

Inline runs and Inngest runs claim the same rows, so a window's work is done once
whichever path reaches it first; the other is recorded as a suppressed duplicate.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import F

from core.timefmt import iso_utc
from dispatch.keys import any_key_window_start
from runs.metrics import suppressed_run_count
from runs.models import DeadLetter, FunctionRun, FunctionRunAttempt
from runs.services import dead_letter_for_run
from runs.status import SCOPE_RE, status_write

logger = logging.getLogger(__name__)

Status = FunctionRun.Status


@dataclass(frozen=True)
class RunClaim:
    """The ledger row of the window, and whether this run owns it (else: a duplicate, skip)."""

    run: FunctionRun
    won: bool


def scope_of(params: dict[str, Any]) -> str:
    """Return the run's scope: a cron param `tenant` when it is a valid scope, else `global`."""
    tenant = params.get("tenant")
    return tenant if isinstance(tenant, str) and SCOPE_RE.fullmatch(tenant) else "global"


def run_claim(
    *,
    function_id: str,
    dispatch_key: str,
    run_id: str,
    correlation_id: str,
    source: str,
    scope: str,
    step: str | None,
    now: datetime,
    max_attempts: int | None = None,
) -> RunClaim:
    """Claim the (function, window) row for `run_id`, or record this run as a suppressed duplicate.

    The unique constraint on (function_id, dispatch_key) refuses every insert but
    one. The same run claiming again (a retried step) gets its own row back. The row
    keeps its window's start (the admin lists runs in window order): for a key that
    names no window (a refused payload's `invalid:<run id>`), when the run started.
    `step` names the step whose first attempt starts with the claim (an inline run's
    `inline`); None when the run's steps record their own attempts (Inngest), whose
    request says how many attempts each step gets (`max_attempts`).
    """
    try:
        with transaction.atomic():
            run = FunctionRun.objects.create(
                function_id=function_id,
                dispatch_key=dispatch_key,
                window_start=any_key_window_start(dispatch_key) or now,
                run_id=run_id,
                correlation_id=correlation_id,
                source=source,
                scope=scope,
                status=Status.RUNNING,
                attempts=0 if step is None else 1,
                max_attempts=max_attempts,
                started_at=now,
            )
            if step is not None:
                FunctionRunAttempt.objects.create(run=run, step=step, attempt=1, started_at=now)
    except IntegrityError:
        run = FunctionRun.objects.get(function_id=function_id, dispatch_key=dispatch_key)
        if run.run_id == run_id:
            return RunClaim(run=run, won=True)
        FunctionRun.objects.filter(pk=run.pk).update(duplicates_suppressed=F("duplicates_suppressed") + 1)
        suppressed_run_count(function_id=function_id)
        logger.warning(
            "duplicate run suppressed",
            extra={"action": "run_claim", "functionId": function_id, "ownerRunId": run.run_id, "runId": run_id},
        )
        return RunClaim(run=run, won=False)
    _blob(run, now=now, status=Status.RUNNING, startedAt=iso_utc(now), finishedAt=None, durationMs=None, lastError="")
    logger.info("run started", extra={"action": "run_start", "functionId": function_id})
    return RunClaim(run=run, won=True)


def attempt_begin(*, run_pk: int, step: str, attempt: int, now: datetime) -> str:
    """Record that `step` is making its `attempt` (Inngest's ctx.attempt + 1, from 1 in each step); return the
    run's status.

    A run no longer `running` (the reconciler abandoned it, or it failed) records no
    attempt: its status tells the caller not to do the step's work. The run's row is
    locked meanwhile, so the reconciler either sees this attempt as progress or ends
    the run before it begins.
    """
    with transaction.atomic():
        status = FunctionRun.objects.select_for_update().filter(pk=run_pk).values_list("status", flat=True).get()
        if status != Status.RUNNING:
            return status
        _, created = FunctionRunAttempt.objects.get_or_create(
            run_id=run_pk, step=step, attempt=attempt, defaults={"started_at": now}
        )
        if created:  # a repeated request of the same attempt is the same attempt
            FunctionRun.objects.filter(pk=run_pk).update(attempts=F("attempts") + 1)
    return status


def attempt_succeed(*, run_pk: int, step: str, attempt: int, now: datetime) -> None:
    """Record that `step`'s `attempt` did its work."""
    FunctionRunAttempt.objects.filter(run_id=run_pk, step=step, attempt=attempt, status=Status.RUNNING).update(
        status=Status.SUCCEEDED, finished_at=now
    )


def attempt_fail(*, run_pk: int, step: str, attempt: int, error: str, now: datetime) -> None:
    """Record that `step`'s `attempt` failed (it may be retried)."""
    FunctionRunAttempt.objects.filter(run_id=run_pk, step=step, attempt=attempt).update(
        status=Status.FAILED, error=error, finished_at=now
    )
    FunctionRun.objects.filter(pk=run_pk).update(last_error=error)
    run = FunctionRun.objects.get(pk=run_pk)
    _blob(run, now=now, attempt=attempt, lastError=error)
    logger.warning("run attempt failed", extra={"action": "run_attempt", "attempt": attempt, "step": step})


def run_finish(*, run_pk: int, output: Any, now: datetime) -> None:
    """Mark the run succeeded with its JSON output, and its open attempt with it.

    A run that already ended (the reconciler abandoned it meanwhile) stays as it
    ended: its status blob is left alone and a warning says so.
    """
    run = FunctionRun.objects.get(pk=run_pk)
    duration_ms = _duration_ms(run, now)
    with transaction.atomic():
        finished = FunctionRun.objects.filter(pk=run_pk, status=Status.RUNNING).update(
            status=Status.SUCCEEDED, finished_at=now, duration_ms=duration_ms, output=output
        )
        if finished:
            FunctionRunAttempt.objects.filter(run_id=run_pk, status=Status.RUNNING).update(
                status=Status.SUCCEEDED, finished_at=now
            )
    if not finished:
        ended = FunctionRun.objects.values_list("status", "terminal_reason").get(pk=run_pk)
        logger.warning(
            f"run finished after it had already ended as {ended[0]}: its output is not recorded",
            extra={"action": "run_finish", "functionId": run.function_id, "terminalReason": ended[1]},
        )
        return
    _blob(run, now=now, status=Status.SUCCEEDED, finishedAt=iso_utc(now), durationMs=duration_ms, attempt=run.attempts)
    logger.info(
        "run finished", extra={"action": "run_finish", "functionId": run.function_id, "durationMs": duration_ms}
    )


def run_fail(
    *,
    run_pk: int,
    error: str,
    terminal_reason: str,
    payload: Any,
    now: datetime,
    step: str | None = None,
    attempt: int | None = None,
) -> DeadLetter | None:
    """Mark the run failed for good and write its one dead letter (idempotent).

    `step` and `attempt` name the attempt that failed for good; without them the
    failure was reported from outside the steps (on_failure, a refused payload):
    the attempt still running failed with it, and a run that made no attempt at all
    is given one. A run that already succeeded is left alone (None is returned).
    """
    with transaction.atomic():
        run = FunctionRun.objects.select_for_update().get(pk=run_pk)
        if run.status == Status.SUCCEEDED:
            return None
        letter = _fail_locked(
            run, error=error, terminal_reason=terminal_reason, payload=payload, now=now, step=step, attempt=attempt
        )
    _failed(run, error=error, now=now)
    return letter


def run_abandon(*, run_pk: int, idle_since: datetime, payload: Any, now: datetime) -> DeadLetter | None:
    """Mark a run that made no progress since `idle_since` failed for good, with its one dead letter.

    Its terminal reason is `abandoned: no progress since <idle_since>`. Nothing
    changes (None is returned) when the run is no longer running or has made progress
    since (an attempt began or ended after `idle_since`): the reconciler never ends a
    run that came back to life.
    """
    reason = f"abandoned: no progress since {iso_utc(idle_since)}"
    with transaction.atomic():
        run = FunctionRun.objects.select_for_update().filter(pk=run_pk).first()
        if run is None or run.status != Status.RUNNING or last_progress(run) > idle_since:
            return None
        letter = _fail_locked(run, error=reason, terminal_reason=reason, payload=payload, now=now)
    _failed(run, error=reason, now=now)
    return letter


def last_progress(run: FunctionRun) -> datetime:
    """Return when the run last showed progress: its start, or an attempt of one of its steps starting or ending."""
    moments = [run.started_at]
    for started_at, finished_at in FunctionRunAttempt.objects.filter(run=run).values_list("started_at", "finished_at"):
        moments += [started_at] if finished_at is None else [started_at, finished_at]
    return max(moments)


def _fail_locked(
    run: FunctionRun,
    *,
    error: str,
    terminal_reason: str,
    payload: Any,
    now: datetime,
    step: str | None = None,
    attempt: int | None = None,
) -> DeadLetter:
    """Fail `run` (locked by the caller's transaction) and its open attempt; return its dead letter."""
    failed = {"status": Status.FAILED, "error": error, "finished_at": now}
    attempts = FunctionRunAttempt.objects.filter(run=run)
    if step is not None and attempt is not None:
        row, created = attempts.get_or_create(step=step, attempt=attempt, defaults={"started_at": now, **failed})
        if not created and row.status == Status.RUNNING:
            attempts.filter(pk=row.pk).update(**failed)
    else:
        created = not attempts.exists()
        if created:
            FunctionRunAttempt.objects.create(run=run, step="", attempt=attempt or 1, started_at=now, **failed)
        attempts.filter(status=Status.RUNNING).update(**failed)
    if created:
        run.attempts += 1
    if run.status == Status.RUNNING:
        run.status = Status.FAILED
        run.finished_at = now
        run.duration_ms = _duration_ms(run, now)
        run.last_error = error
        run.terminal_reason = terminal_reason[:500]
    run.save(update_fields=["status", "finished_at", "duration_ms", "last_error", "terminal_reason", "attempts"])
    return dead_letter_for_run(run=run, error=error, payload=payload, now=now)


def _failed(run: FunctionRun, *, error: str, now: datetime) -> None:
    _blob(run, now=now, status=Status.FAILED, finishedAt=iso_utc(now), durationMs=run.duration_ms, lastError=error)
    logger.error(
        "run failed",
        extra={"action": "dead_letter", "functionId": run.function_id, "terminalReason": run.terminal_reason},
    )


def run_fail_reported(
    *,
    function_id: str,
    dispatch_key: str,
    run_id: str,
    correlation_id: str,
    source: str,
    scope: str,
    attempt: int | None,
    error: str,
    terminal_reason: str,
    payload: Any,
    now: datetime,
) -> DeadLetter | None:
    """Record a terminal failure reported from outside the run's steps (on_failure, a bad payload).

    The run may never have reached its claim (its row is created, failed); a
    failure reported for a duplicate run that never owned the window is ignored.
    `attempt` numbers the attempt to record when the run made none (None: 1).
    """
    claim = run_claim(
        function_id=function_id,
        dispatch_key=dispatch_key,
        run_id=run_id,
        correlation_id=correlation_id,
        source=source,
        scope=scope,
        step=None,
        now=now,
    )
    if not claim.won:
        logger.warning(
            "failure of a duplicate run ignored: it never owned the window",
            extra={"action": "run_failure", "functionId": function_id, "ownerRunId": claim.run.run_id},
        )
        return None
    return run_fail(
        run_pk=claim.run.pk,
        attempt=attempt,
        error=error,
        terminal_reason=terminal_reason,
        payload=payload,
        now=now,
    )


def _duration_ms(run: FunctionRun, now: datetime) -> int:
    return max(0, round((now - run.started_at).total_seconds() * 1000))


def _blob(run: FunctionRun, *, now: datetime, **fields: Any) -> None:
    status_write(
        scope=run.scope,
        job_name=run.function_id,
        now=now,
        source=run.source,
        dispatchKey=run.dispatch_key,
        correlationId=run.correlation_id,
        runId=run.run_id,
        **fields,
    )
