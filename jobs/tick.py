"""The built-in `background-jobs` cron job, as run inline: maintenance, then a drain."""

from __future__ import annotations

import time
from typing import Any

from dispatch.registry import CronContext
from jobs.maintenance import run_maintenance
from jobs.runner import RunOrigin, jobs_run


def background_tick(ctx: CronContext) -> dict[str, Any]:
    """Recover lost leases and prune first, then drain due jobs with what is left of the budget."""
    started = time.monotonic()
    maintenance = run_maintenance(now=ctx.now)
    remaining = max(0.0, ctx.budget_seconds - (time.monotonic() - started))
    origin = RunOrigin(correlation_id=ctx.correlation_id, dispatch_key=ctx.dispatch_key, run_id=ctx.run_id)
    process = jobs_run(budget_seconds=remaining, origin=origin)
    return {"process": process.as_json(), "maintenance": maintenance}
