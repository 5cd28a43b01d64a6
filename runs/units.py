"""The work units of the built-in `background-jobs` cron job: maintenance and a drain.

dispatch.registry names them by dotted path (`runs.units.maintain`,
`runs.units.process_jobs`), as settings name a project's cron callables.
"""

from __future__ import annotations

from typing import Any

from dispatch.registry import CronContext
from jobs.context import RunOrigin
from jobs.runner import jobs_run
from runs.maintenance import run_maintenance


def maintain(ctx: CronContext) -> dict[str, Any]:
    """Recover lost leases, prune history, report queue health."""
    return run_maintenance(now=ctx.now)


def process_jobs(ctx: CronContext) -> dict[str, Any]:
    """Drain due jobs for at most the context's budget."""
    origin = RunOrigin(correlation_id=ctx.correlation_id, dispatch_key=ctx.dispatch_key, run_id=ctx.run_id)
    return jobs_run(budget_seconds=ctx.budget_seconds, origin=origin).as_json()
