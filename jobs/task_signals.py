"""The Tasks framework's signals as a task's job sends them (docs/tasks.md, "Signals").

`task_enqueued` once the job is written (jobs.backend); `task_started` as each attempt
starts, inside it; `task_finished` once the result is final, SUCCESSFUL or FAILED, after
the transaction that records it commits. A job runs in its group's transaction (jobs.group),
so a receiver told of a result reads that result back, and a group rolled back and run
again sends one `task_finished`, for the outcome that stayed. A failed attempt that will
be retried sends none: its result is READY again. Each is sent with the backend's class
as sender, as the framework's own backends send them.

`task_started`, and a success's `task_finished`, are sent only when a receiver would hear
them: django-tasks' own log receivers, always connected, hear only when their logger emits
at their level (INFO), so where they are the only receivers and that logger is quieter, no
TaskResult is built for them. A failure's `task_finished` is always sent: its
`logger.exception` is error monitoring's hook.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import Any

from django.dispatch import Signal
from django_tasks import signals
from django_tasks.base import Task, TaskResult, TaskResultStatus
from django_tasks.signals import task_finished, task_started

from core.prometheus import after_commit
from jobs.models import BackgroundJob
from jobs.task_results import task_result_of_job

logger = logging.getLogger(__name__)

# (signal, sender) -> (the signal's receivers when last read, whether others than django-tasks' log receiver
# listen, whether that one does)
_hearing: dict[tuple[Signal, type], tuple[list[Any], bool, bool]] = {}


def task_started_heard(*, sender: type) -> bool:
    """Return whether `task_started` from `sender` would reach a receiver that does something with it."""
    return _heard(task_started, sender, own=signals.log_task_started)


def task_started_send(result: TaskResult[Any], *, sender: type) -> None:
    """Send `task_started` for `result`, RUNNING (a receiver that raises fails the attempt, as it would upstream)."""
    task_started.send(sender, task_result=result)


def task_succeeded_send(
    job: BackgroundJob, *, task: Task[Any, Any], return_value: Any, finished_at: datetime, sender: type
) -> None:
    """Send `task_finished` for `job`, a job of `task` whose success committed, if a receiver would hear it.

    `return_value` and `finished_at` are the job's as its success mark wrote them.
    """
    if not _heard(task_finished, sender, own=signals.log_task_finished):
        return
    result = task_result_of_job(job, task=task, backend=task.backend)
    # The result was just built here, for this signal alone: it is set as the committed mark says.
    object.__setattr__(result, "status", TaskResultStatus.SUCCESSFUL)
    object.__setattr__(result, "finished_at", finished_at)
    object.__setattr__(result, "_return_value", return_value)
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


def _heard(signal: Signal, sender: type, *, own: Callable[..., Any]) -> bool:
    """Return whether `signal` from `sender` reaches a receiver other than django-tasks' `own` log receiver, or that
    one with its logger emitting at INFO (the level it logs a start or a success at).

    Who listens is read again only when the signal's receivers changed (connected, disconnected, or dead ones
    cleared): that read costs more than the rest of a no-op job's signals.
    """
    key = (signal, sender)
    known = _hearing.get(key)
    if known is None or known[0] != signal.receivers:
        # Signal._live_receivers is Django's private API: the public has_listeners() cannot tell django-tasks' own
        # log receiver, always connected, from an application's. It is what send() itself calls first. (A receiver
        # that died since is still counted until the list changes: the signal is sent then, to no one.)
        live, live_async = signal._live_receivers(sender)
        others = bool(live_async) or any(receiver is not own for receiver in live)
        known = _hearing[key] = (list(signal.receivers), others, own in live)
    _, others, logs = known
    return others or (logs and signals.logger.isEnabledFor(logging.INFO))
