"""A job's savepoint in its group (jobs.group), taken just before the handler's first statement."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.db import connection


class LazySavepoint:
    """While in use, take a savepoint just before the first statement on the thread's connection; undo to it on error.

    The savepoint joins Django's savepoint stack, so that `transaction.on_commit`
    callbacks a failing handler registered are dropped with its writes; those it
    registered before its first statement, when it had no savepoint yet, are dropped
    too (every callback registered while in use).
    """

    def __init__(self) -> None:
        self.sid: str | None = None
        self._taking = False
        self._wrapping: Any = None
        self._callbacks = 0  # how many commit callbacks the transaction had before the handler

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        if self.sid is None and not self._taking:
            self._taking = True  # the SAVEPOINT statement itself passes through this wrapper
            try:
                sid = connection.savepoint()
            finally:
                self._taking = False
            assert sid is not None, "the group's transaction is open, so a savepoint is allowed"
            self.sid = sid
            connection.savepoint_ids.append(sid)
        return execute(sql, params, many, context)

    def __enter__(self) -> LazySavepoint:
        self._callbacks = len(connection.run_on_commit)
        self._wrapping = connection.execute_wrapper(self)
        self._wrapping.__enter__()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: Any) -> None:
        self._wrapping.__exit__(None, None, None)
        if self.sid is not None:
            assert connection.savepoint_ids[-1] == self.sid, "a handler left a transaction.atomic() block open"
            connection.savepoint_ids.pop()
        if kind is None:
            return
        if self.sid is not None:
            connection.savepoint_rollback(self.sid)
        del connection.run_on_commit[self._callbacks :]
        connection.needs_rollback = False
