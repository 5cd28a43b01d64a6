"""The test cron job `counter`: records every run in CronRun."""

from __future__ import annotations

import os
from typing import Any

from dispatch.registry import CronContext
from testsupport.models import CronRun


def count_run(ctx: CronContext) -> dict[str, Any]:
    """Record this run and return a summary naming it."""
    run = CronRun.objects.create(
        dispatch_key=ctx.dispatch_key, params=ctx.params, source=ctx.source, worker_pid=os.getpid()
    )
    return {"cronRunId": run.pk, "params": ctx.params}


def crash(ctx: CronContext) -> dict[str, Any]:
    """Raise, as a broken cron job would."""
    raise RuntimeError("the crash cron job always crashes")


def fail_first_attempt(ctx: CronContext) -> dict[str, Any]:
    """Fail the first call for a window (recording it), succeed on the next."""
    previous = CronRun.objects.filter(dispatch_key=ctx.dispatch_key).count()
    CronRun.objects.create(dispatch_key=ctx.dispatch_key, params={}, source=ctx.source, worker_pid=os.getpid())
    if previous == 0:
        raise ConnectionError("flaky dependency: first call fails")
    return {"calls": previous + 1}
