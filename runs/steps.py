"""A step of an Inngest function that records each of its attempts in the run ledger (docs/inngest.md).

Inngest numbers a step's attempts from 0 in `ctx.attempt`; the ledger records them
from 1. The last attempt is the one Inngest's request says (`ctx.max_attempts`, which
runs.views hands over with `execution_request`); a work that raises a RetryAfterError
asking for a wait longer than the run's bound is warned about, since the reconciler
would abandon the run before Inngest retries it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime, timedelta
from typing import Any

import inngest
from django.conf import settings
from django.utils import timezone

from core.errors import one_line
from runs import ledger
from runs.models import FunctionRun
from runs.reconcile_settings import retry_after_problem

logger = logging.getLogger(__name__)

# The max_attempts of the execution request being served (runs.views sets it), or None.
_request_max_attempts: ContextVar[int | None] = ContextVar("request_max_attempts", default=None)


@contextmanager
def execution_request(*, max_attempts: int | None) -> Iterator[None]:
    """Serve one request of Inngest's, whose ctx says how many attempts each step gets (None: not said)."""
    token = _request_max_attempts.set(max_attempts)
    try:
        yield
    finally:
        _request_max_attempts.reset(token)


def step_recorder(
    ctx: inngest.ContextSync, run_pk: int, *, function_id: str, payload: dict[str, Any]
) -> Callable[..., Any]:
    """Return step(name, work): run `work(now)` as an Inngest step that records each of its attempts.

    A step of a run that is no longer `running` (abandoned by the reconciler) does
    not do its work: it raises NonRetriableError, which stops the run.

    The last attempt is the one the request says (its `max_attempts`, which Inngest
    took from the function's config when it was synced), not the current setting.
    """
    max_attempts = _request_max_attempts.get() or settings.INNGEST_FUNCTION_RETRIES + 1

    def step(name: str, work: Callable[[datetime], Any]) -> Any:
        def body() -> Any:
            now, attempt = timezone.now(), ctx.attempt + 1
            status = ledger.attempt_begin(run_pk=run_pk, step=name, attempt=attempt, now=now)
            if status != FunctionRun.Status.RUNNING:
                # The reconciler abandoned the run (its dead letter is written): stop it, without doing the work
                # or failing it a second time.
                raise inngest.NonRetriableError(f"the run already ended as {status}: step {name} not run")
            try:
                output = work(now)
            except Exception as exc:  # Any error of the work: record the attempt, let Inngest retry it.
                error = one_line(exc)
                ledger.attempt_fail(run_pk=run_pk, step=name, attempt=attempt, error=error, now=timezone.now())
                if isinstance(exc, inngest.NonRetriableError) or attempt >= max_attempts:
                    reason = "non-retriable error" if attempt < max_attempts else f"retries exhausted ({attempt})"
                    ledger.run_fail(
                        run_pk=run_pk,
                        step=name,
                        attempt=attempt,
                        error=error,
                        terminal_reason=f"{reason} in step {name}",
                        payload=payload,
                        now=timezone.now(),
                    )
                elif isinstance(exc, inngest.RetryAfterError):
                    _retry_after_checked(function_id, exc, step=name)
                raise
            ledger.attempt_succeed(run_pk=run_pk, step=name, attempt=attempt, now=timezone.now())
            return output

        return ctx.step.run(name, body)

    return step


def _retry_after_checked(function_id: str, exc: inngest.RetryAfterError, *, step: str) -> None:
    """Warn when the work asks Inngest to retry later than the reconciler lets the run wait."""
    wait = timedelta(seconds=exc.retry_after.timestamp() - time.time())  # a naive retry_after is local time
    if problem := retry_after_problem(function_id, wait=wait):
        logger.warning(f"RetryAfterError in step {step} {problem}", extra={"action": "run_attempt", "step": step})
