"""The Tasks framework's signals as a task's job sends them (docs/tasks.md, "Signals").

`task_enqueued` once the job is written (jobs.backend); `task_started` as each attempt
starts, inside it; `task_finished` once the result is final, SUCCESSFUL or FAILED, after
the transaction that records it commits. A job runs in its group's transaction (jobs.group),
so a receiver told of a result reads that result back, and a group rolled back and run
again sends one `task_finished`, for the outcome that stayed. A failed attempt that will
be retried sends none: its result is READY again. Each is sent with the backend's class
as sender, as the framework's own backends send them.
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import partial
from typing import Any

from django_tasks.base import TaskResult, TaskResultStatus
from django_tasks.signals import task_finished, task_started
from django_tasks.utils import normalize_json

from core.prometheus import after_commit

logger = logging.getLogger(__name__)


def task_started_send(result: TaskResult[Any], *, sender: type) -> None:
    """Send `task_started` for `result`, RUNNING (a receiver that raises fails the attempt, as it would upstream)."""
    task_started.send(sender, task_result=result)


def task_succeeded_send(running: TaskResult[Any], *, returned: Any, finished_at: datetime, sender: type) -> None:
    """Send `task_finished` for `running` as SUCCESSFUL with `returned` (call it once the success committed)."""
    result: TaskResult[Any] = TaskResult(
        task=running.task,
        id=running.id,
        status=TaskResultStatus.SUCCESSFUL,
        enqueued_at=running.enqueued_at,
        started_at=running.started_at,
        finished_at=finished_at,
        last_attempted_at=running.last_attempted_at,
        args=running.args,
        kwargs=running.kwargs,
        backend=running.backend,
        errors=running.errors,
        worker_ids=running.worker_ids,
    )
    object.__setattr__(result, "_return_value", normalize_json(returned))  # storable: its success committed
    _send(result, sender=sender)


def task_failed_after_commit(result: TaskResult[Any], *, error: BaseException) -> None:
    """Send `task_finished` for `result`, FAILED by `error`, once the transaction that buries its job commits.

    Receivers run while `error` is being handled, as in the framework's own backends:
    its log receiver's `logger.exception` then carries the traceback to error monitoring.
    """
    after_commit(partial(_failed, result, error))


def _failed(result: TaskResult[Any], error: BaseException) -> None:
    try:
        raise error
    except BaseException:  # noqa: BLE001 (raised above only so that the receivers run while it is handled)
        _send(result, sender=type(result.task.get_backend()))


def _send(result: TaskResult[Any], *, sender: type) -> None:
    for receiver, outcome in task_finished.send_robust(sender, task_result=result):
        if isinstance(outcome, Exception):
            logger.error(
                "a task_finished receiver raised",
                exc_info=outcome,
                extra={"action": "task_signal", "receiver": repr(receiver), "taskResultId": result.id},
            )
