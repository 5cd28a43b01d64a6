"""Demo handlers, registered by default so the README's first command has work to do."""

from __future__ import annotations

import logging
import time
from typing import Any

from jobs.context import JobContext
from jobs.registry import job_handler

logger = logging.getLogger(__name__)

MAX_SLEEP_SECONDS = 30.0


@job_handler("demo.echo")
def echo(ctx: JobContext) -> Any:
    """Log the payload and return it."""
    logger.info("demo.echo", extra={"action": "demo", "jobId": ctx.job_id, "payloadKeys": _keys(ctx.payload)})
    return ctx.payload


@job_handler("demo.noop")
def noop(ctx: JobContext) -> None:
    """Do nothing: the queue's own cost, for benchmarks and smoke tests."""


@job_handler("demo.sleep")
def sleep(ctx: JobContext) -> None:
    """Sleep `seconds` (at most 30), heartbeating once a second so the lease holds."""
    remaining = min(float(_get(ctx.payload, "seconds", 1.0)), MAX_SLEEP_SECONDS)
    while remaining > 0:
        time.sleep(min(1.0, remaining))
        remaining -= 1.0
        if not ctx.heartbeat():
            return


@job_handler("demo.flaky")
def flaky(ctx: JobContext) -> None:
    """Fail the first `failures` attempts (default 2), then succeed."""
    failures = int(_get(ctx.payload, "failures", 2))
    if ctx.attempt <= failures:
        raise RuntimeError(f"demo.flaky fails attempt {ctx.attempt} of the first {failures}")


@job_handler("demo.fail")
def fail(ctx: JobContext) -> None:
    """Always fail: the job ends as a dead letter after its last attempt."""
    raise RuntimeError(f"demo.fail always fails (attempt {ctx.attempt} of {ctx.max_attempts})")


def _get(payload: Any, key: str, default: Any) -> Any:
    return payload.get(key, default) if isinstance(payload, dict) else default


def _keys(payload: Any) -> list[str]:
    return sorted(payload) if isinstance(payload, dict) else []
