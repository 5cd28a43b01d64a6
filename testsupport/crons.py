"""The test cron jobs: `counter` records every run in CronRun; the others crash, fail once, or stall."""

from __future__ import annotations

import os
import threading
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


STALL_LIMIT_SECONDS = 120.0


def stall(ctx: CronContext) -> dict[str, Any]:
    """Record the run, then make no progress until the process is killed; an operator's manual run finishes.

    The wait is bounded, so a process nobody kills ends on its own.
    """
    CronRun.objects.create(dispatch_key=ctx.dispatch_key, params={}, source=ctx.source, worker_pid=os.getpid())
    if ctx.source != "manual":
        threading.Event().wait(STALL_LIMIT_SECONDS)
        raise TimeoutError(f"the stall cron job was not killed within {STALL_LIMIT_SECONDS:g} s")
    return {"stalled": False}
