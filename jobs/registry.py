"""Job handlers, registered by kind with @job_handler; modules listed in JOB_HANDLER_MODULES."""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib import import_module
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

if TYPE_CHECKING:
    from jobs.context import JobContext

Handler = Callable[["JobContext"], Any]
KIND_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")

_handlers: dict[str, Handler] = {}


def job_handler(kind: str) -> Callable[[Handler], Handler]:
    """Register the decorated function as the handler of jobs of `kind`."""
    if not KIND_RE.fullmatch(kind):
        raise ImproperlyConfigured(f"job kind {kind!r} must match {KIND_RE.pattern}")

    def register(handler: Handler) -> Handler:
        existing = _handlers.get(kind)
        if existing is not None and existing is not handler:
            raise ImproperlyConfigured(f"job kind {kind!r} is registered twice: {_name(existing)} and {_name(handler)}")
        _handlers[kind] = handler
        return handler

    return register


def get_handler(kind: str) -> Handler | None:
    """Return the handler registered for `kind`, or None."""
    return _handlers.get(kind)


def registered_kinds() -> list[str]:
    """Return every registered kind, sorted."""
    return sorted(_handlers)


def load_handler_modules() -> None:
    """Import every module in settings.JOB_HANDLER_MODULES so its handlers register."""
    for path in settings.JOB_HANDLER_MODULES:
        try:
            import_module(path)
        except ImportError as exc:
            raise ImproperlyConfigured(f"JOB_HANDLER_MODULES lists {path!r}, which cannot be imported: {exc}") from exc


def _name(handler: Handler) -> str:
    return f"{handler.__module__}.{getattr(handler, '__qualname__', handler)}"
