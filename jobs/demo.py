"""Demo tasks, registered by default so the README's first command has work to do.

Each is a Django Task (docs/tasks.md) whose jobs keep their short kind, `demo.echo` and
so on, through @job_handler: `demo.echo.enqueue(message="hi")` and
`manage.py enqueue_job demo.echo --payload '{"kwargs": {"message": "hi"}}'` write the same job.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django_tasks import TaskContext, task

from jobs.registry import job_handler
from jobs.retry import retry_policy

logger = logging.getLogger(__name__)

MAX_SLEEP_SECONDS = 30.0


@job_handler("demo.echo")
@task(takes_context=True)
def echo(context: TaskContext, message: str = "") -> dict[str, Any]:
    """Log that it ran (not the message) and return the message."""
    logger.info("demo.echo", extra={"action": "demo", "jobId": context.task_result.id, "length": len(message)})
    return {"message": message}


@job_handler("demo.noop")
@task
def noop() -> None:
    """Do nothing: the queue's own cost, for benchmarks and smoke tests."""


@job_handler("demo.sleep")
@task(takes_context=True)
def sleep(context: TaskContext, seconds: float = 1.0) -> None:
    """Sleep `seconds` (at most 30), extending the job's lease once a second."""
    remaining = min(float(seconds), MAX_SLEEP_SECONDS)
    heartbeat = getattr(context, "heartbeat", None)  # Orchestrator's context has one; ImmediateBackend's not.
    while remaining > 0:
        time.sleep(min(1.0, remaining))
        remaining -= 1.0
        if heartbeat is not None and not heartbeat():
            return


@job_handler("demo.flaky")
@retry_policy(max_attempts=5)
@task(takes_context=True)
def flaky(context: TaskContext, failures: int = 2) -> None:
    """Fail the first `failures` attempts, then succeed (it has five: a task runs once unless its policy says)."""
    if context.attempt <= failures:
        raise RuntimeError(f"demo.flaky fails attempt {context.attempt} of the first {failures}")


@job_handler("demo.fail")
@task(takes_context=True)
def fail(context: TaskContext) -> None:
    """Always fail: the job ends as a dead letter after its last attempt."""
    raise RuntimeError(f"demo.fail always fails (attempt {context.attempt})")
