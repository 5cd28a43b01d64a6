"""The Inngest functions (docs/inngest.md): one per work unit of every registered cron job.

`process-background-jobs` drains the queue, `background-maintenance` runs
maintenance, `cron-<name>` runs an extra cron job, and `drain-background-jobs`
drains on request, when a job is enqueued to run now (dispatch.drain: its key
names a second, not a window). Each function:

- refuses a payload without `dispatchKey` as non-retriable (idempotency would
  silently switch off), recording the failed run and its dead letter; likewise a
  key of another cron job, a key no tick makes (off its window's start, or with a
  suffix other than `:manual-<8 hex>`: a holder of the event key must not run one
  window many times; a key a tick claimed under the job's earlier schedule is one a
  tick makes), or a window more than one window ahead (nor pre-claim future
  windows, whose real runs would then be skipped as duplicates);
- claims its (function, window) ledger row in a step, so a second Inngest run of
  the same window (another run id) does no work: `{"skipped": "duplicate-window"}`;
- does its work in steps, each bounded by INNGEST_STEP_BUDGET_SECONDS, so no
  single call from Inngest outlives a request timeout;
- records every attempt of every step (runs.steps; Inngest numbers them from 1 in each step);
  the last failing attempt (the request's own max_attempts says which), or a
  NonRetriableError, marks the run failed and writes its dead letter, and
  `on_failure` writes the same dead letter idempotently, so either path alone
  suffices.

The SDK re-enters the function body once per step, replaying finished steps from
their memoized output: every ledger write therefore happens inside a step.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Any, NoReturn

import inngest
from django.conf import settings
from django.utils import timezone

from core.errors import squash
from core.logcontext import log_context
from dispatch import keys
from dispatch.drain import DRAIN_FUNCTION, DRAIN_UNIT, drain_key_problem
from dispatch.models import DispatchWindow
from dispatch.registry import BUILTIN, CronContext, CronJob, WorkUnit, cron_jobs
from jobs.context import RunOrigin
from jobs.runner import jobs_run, merge_summaries
from runs import ledger
from runs.inline import SKIPPED, to_json
from runs.reconcile_function import reconcile_function
from runs.steps import request_max_attempts, step_recorder

logger = logging.getLogger(__name__)

PROCESS_JOBS = "process-background-jobs"
MAX_DISPATCH_KEY_LENGTH = 200
MISSING_KEY = "event.data.dispatchKey is missing or invalid: refusing to run without idempotency"


def build_functions(client: inngest.Inngest) -> list[inngest.Function[Any]]:
    """Return the Inngest function of every work unit of every registered cron job, the drain on request and the
    reconciler's."""
    functions = [_build(client, job, unit) for job in cron_jobs().values() for unit in job.units]
    functions.append(_build(client, BUILTIN, DRAIN_UNIT))
    if settings.RECONCILE_CRON.strip():
        functions.append(reconcile_function(client))
    return functions


def _build(client: inngest.Inngest, job: CronJob, unit: WorkUnit) -> inngest.Function[Any]:
    def on_failure(ctx: inngest.ContextSync) -> dict[str, Any]:
        return _record_failure(ctx, job, unit)

    @client.create_function(
        fn_id=unit.function_id,
        name=unit.function_id,
        trigger=inngest.TriggerEvent(event=unit.event),
        retries=settings.INNGEST_FUNCTION_RETRIES,
        concurrency=[inngest.Concurrency(limit=1)],
        idempotency="event.data.dispatchKey",
        on_failure=on_failure,
    )
    def function(ctx: inngest.ContextSync) -> Any:
        return _execute(ctx, job, unit)

    return function


def _execute(ctx: inngest.ContextSync, job: CronJob, unit: WorkUnit) -> Any:
    data = dict(ctx.event.data)
    key = data.get("dispatchKey")
    if not isinstance(key, str) or not _valid_key(key):
        _refuse(ctx, unit, data, error=MISSING_KEY)
    if problem := _key_problem(job, unit, key, now=timezone.now()):
        _refuse(ctx, unit, data, error=f"event.data.dispatchKey {key!r} {problem}: refusing to claim it")
    params = _mapping(data.get("params"))
    correlation_id = str(data.get("correlationId") or "")[:64]
    source = str(data.get("source") or "")[:16]
    with log_context(correlationId=correlation_id, dispatchKey=key, runId=ctx.run_id, mode="dispatch"):
        claim = ctx.step.run(
            "claim-run",
            lambda: _claim(ctx, unit, key=key, correlation_id=correlation_id, source=source, params=params),
        )
        if not claim["won"]:
            return SKIPPED
        run_pk: int = claim["runPk"]
        step = step_recorder(ctx, run_pk, function_id=unit.function_id, payload={"event": unit.event, "data": data})
        base = CronContext(
            job=job.name,
            params=params,
            now=timezone.now(),
            budget_seconds=settings.INNGEST_STEP_BUDGET_SECONDS,
            dispatch_key=key,
            correlation_id=correlation_id,
            source=source,
            run_id=ctx.run_id,
        )
        if unit.function_id in (PROCESS_JOBS, DRAIN_FUNCTION):
            output = _drain(step, base)
        else:
            output = step("run", lambda now: to_json(unit.load()(_at(base, now))))
        ctx.step.run(
            "finish-run",
            lambda: ledger.run_finish(run_pk=run_pk, output=output, now=timezone.now()),
        )
        return output


def _drain(step: Callable[..., Any], base: CronContext) -> dict[str, Any]:
    """Drain the queue in steps (each within INNGEST_STEP_BUDGET_SECONDS and _STEP_MAX_JOBS) while jobs remain due."""
    origin = RunOrigin(correlation_id=base.correlation_id, dispatch_key=base.dispatch_key, run_id=base.run_id)
    totals: dict[str, Any] | None = None
    for number in range(1, settings.INNGEST_MAX_DRAIN_STEPS + 1):
        summary: dict[str, Any] = step(
            f"drain-{number}",
            lambda now: jobs_run(
                budget_seconds=base.budget_seconds, max_jobs=settings.INNGEST_STEP_MAX_JOBS, origin=origin
            ).as_json(),
        )
        totals = summary if totals is None else merge_summaries(totals, summary)
        if not (summary["budgetExhausted"] and summary["remainingBacklog"]):
            break
    assert totals is not None
    return totals


def _claim(
    ctx: inngest.ContextSync, unit: WorkUnit, *, key: str, correlation_id: str, source: str, params: dict[str, Any]
) -> dict[str, Any]:
    claim = ledger.run_claim(
        function_id=unit.function_id,
        dispatch_key=key,
        run_id=ctx.run_id,
        correlation_id=correlation_id,
        source=source,
        scope=ledger.scope_of(params),
        step=None,  # each step records its own attempts
        now=timezone.now(),
        max_attempts=request_max_attempts(),
    )
    return {"runPk": claim.run.pk, "won": claim.won}


def _refuse(ctx: inngest.ContextSync, unit: WorkUnit, data: dict[str, Any], *, error: str) -> NoReturn:
    """Record the run of a payload without a usable dispatchKey as failed, then refuse it.

    The failure is recorded under the run's own `invalid:<run id>` key: a key that
    names no window of the job must never be claimed.
    """
    ledger.run_fail_reported(
        function_id=unit.function_id,
        dispatch_key=_invalid_key(ctx.run_id),
        run_id=ctx.run_id,
        correlation_id=str(data.get("correlationId") or "")[:64],
        source=str(data.get("source") or "")[:16],
        scope="global",
        attempt=ctx.attempt + 1,
        error=error,
        terminal_reason="non-retriable error: invalid payload",
        payload={"event": unit.event, "data": data},
        now=timezone.now(),
    )
    raise inngest.NonRetriableError(error)


def _record_failure(ctx: inngest.ContextSync, job: CronJob, unit: WorkUnit) -> dict[str, Any]:
    """on_failure: write the failed run's dead letter (idempotently; Inngest gives this no retries)."""
    failure = dict(ctx.event.data)
    data = _mapping(_mapping(failure.get("event")).get("data"))
    run_id = str(failure.get("run_id") or ctx.run_id)
    key = data.get("dispatchKey")
    # A key the run itself refused is refused here too: the failure must not claim its window.
    usable = isinstance(key, str) and _valid_key(key) and not _key_problem(job, unit, key, now=timezone.now())
    dispatch_key = str(key) if usable else _invalid_key(run_id)
    error_info = _mapping(failure.get("error"))
    error = f"{error_info.get('name') or 'Error'}: {error_info.get('message') or 'the function failed'}"
    letter = ledger.run_fail_reported(
        function_id=unit.function_id,
        dispatch_key=dispatch_key,
        run_id=run_id,
        correlation_id=str(data.get("correlationId") or "")[:64],
        source=str(data.get("source") or "")[:16],
        scope=ledger.scope_of(_mapping(data.get("params"))),
        attempt=None,
        error=squash(error),
        terminal_reason="reported by on_failure",
        payload={"event": unit.event, "data": data},
        now=timezone.now(),
    )
    return {"deadLetter": letter.pk if letter else None}


def _mapping(value: object) -> dict[str, Any]:
    """Return `value` as a dict when it is one (payloads come from outside), else {}."""
    return dict(value) if isinstance(value, dict) else {}


def _valid_key(key: object) -> bool:
    return isinstance(key, str) and 0 < len(key) <= MAX_DISPATCH_KEY_LENGTH and key.isprintable()


def _key_problem(job: CronJob, unit: WorkUnit, key: str, *, now: datetime) -> str:
    """Return why `key` names no window of `job` (no second, for the drain on request) that may run now, or "".

    A key a tick claimed is one, even where the job's current schedule starts no window:
    its events were published under an earlier schedule (in flight, retried or
    re-published when the schedule changed), and the run ledger still runs it once.
    """
    if unit.function_id == DRAIN_FUNCTION:
        return drain_key_problem(key, now=now)
    problem = keys.window_problem(key, job=job, now=now)
    if problem and DispatchWindow.objects.filter(dispatch_key=key, job=job.name).exists():
        return ""
    return problem


def _invalid_key(run_id: str) -> str:
    return f"invalid:{run_id}"[:MAX_DISPATCH_KEY_LENGTH]


def _at(base: CronContext, now: datetime) -> CronContext:
    return replace(base, now=now)
