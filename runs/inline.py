"""Running a cron job's work units inside the current process, through the run ledger.

Each unit claims its (function, window) row exactly as its Inngest function
would, so a window can never be processed both inline and by Inngest.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder

from core.errors import one_line
from dispatch.hooks import InlineResult
from dispatch.registry import CronContext, CronJob
from runs import ledger

logger = logging.getLogger(__name__)

SKIPPED = {"skipped": "duplicate-window"}
INLINE_STEP = "inline"  # an inline run is one attempt of one step


def run_inline(*, job: CronJob, ctx: CronContext, payload: dict[str, Any]) -> InlineResult:
    """Run every unit of `job` in order within `ctx.budget_seconds`; a crash stops only its unit.

    Registered at start-up as the dispatcher's inline runner (dispatch.hooks).

    Times are the tick's `now` plus the elapsed time, so the ledger stays on the
    clock the tick was given.
    """
    started = time.monotonic()

    def clock() -> datetime:
        return ctx.now + timedelta(seconds=time.monotonic() - started)

    run_id = f"inline-{secrets.token_hex(6)}"
    result = InlineResult()
    for unit in job.units:
        claim = ledger.run_claim(
            function_id=unit.function_id,
            dispatch_key=ctx.dispatch_key,
            run_id=run_id,
            correlation_id=ctx.correlation_id,
            source=ctx.source,
            scope=ledger.scope_of(ctx.params),
            step=INLINE_STEP,
            now=ctx.now,
        )
        if not claim.won:
            result.summary[unit.function_id] = SKIPPED
            continue
        remaining = max(0.0, ctx.budget_seconds - (time.monotonic() - started))
        try:
            output = to_json(unit.load()(replace(ctx, budget_seconds=remaining, run_id=run_id)))
        except Exception as exc:  # The unit's code may raise anything: record it, run the next unit.
            error = one_line(exc)
            ledger.run_fail(
                run_pk=claim.run.pk,
                step=INLINE_STEP,
                attempt=1,
                error=error,
                terminal_reason="inline run crashed",
                payload={"event": unit.event, "data": payload},
                now=clock(),
            )
            logger.exception("inline unit crashed", extra={"action": "inline_run", "functionId": unit.function_id})
            result.summary[unit.function_id] = None
            result.errors.append(f"{unit.function_id}: {error}")
            continue
        ledger.run_finish(run_pk=claim.run.pk, output=output, now=clock())
        result.summary[unit.function_id] = output
    return result


def to_json(value: Any) -> Any:
    """Return `value` as plain JSON types (dates and decimals become strings)."""
    return json.loads(json.dumps(value, cls=DjangoJSONEncoder))
