"""The work units of the built-in `background-jobs` cron job: maintenance and a drain."""

from __future__ import annotations

from typing import Any

from dispatch.registry import CronContext
from jobs.maintenance import run_maintenance
from jobs.runner import RunOrigin, jobs_run


def maintain(ctx: CronContext) -> dict[str, Any]:
    """Recover lost leases, prune history, report queue health."""
    return run_maintenance(now=ctx.now)


def process_jobs(ctx: CronContext) -> dict[str, Any]:
    """Drain due jobs for at most the context's budget."""
    origin = RunOrigin(correlation_id=ctx.correlation_id, dispatch_key=ctx.dispatch_key, run_id=ctx.run_id)
    return jobs_run(budget_seconds=ctx.budget_seconds, origin=origin).as_json()
