"""Fields that every log line inside a block carries: correlationId, dispatchKey, mode, runId.

    with log_context(correlationId=..., dispatchKey=...):
        logger.info("...")   # the JSON line carries both fields

A logging filter on the stdout handler copies the bound fields onto each record,
so code deep inside a tick or a run logs them without passing them around.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

_fields: ContextVar[dict[str, Any]] = ContextVar("orchestrator_log_fields", default={})  # noqa: B039


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Bind `fields` (empty values skipped) to every log record emitted inside the block."""
    token = _fields.set(_fields.get() | {name: value for name, value in fields.items() if value not in (None, "")})
    try:
        yield
    finally:
        _fields.reset(token)


def bound_fields() -> dict[str, Any]:
    """Return the fields bound in the current context."""
    return dict(_fields.get())


class ContextFilter(logging.Filter):
    """Copy the bound fields onto each record, never overwriting what the call passed in `extra`."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in _fields.get().items():
            if not hasattr(record, name):
                setattr(record, name, value)
        return True
