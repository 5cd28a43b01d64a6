"""Where the service's JSON log lines go, and what they may carry.

A server process (gunicorn, `runserver`) logs on stdout. A management command's
stdout is its result (one JSON document with `--json`): while one runs, its log
lines go to stderr instead, still one JSON object per line. `manage.py` calls
`route_command_logs(sys.argv)` before Django starts, so every command, present or
future, is routed the same way.

Nothing here imports Django: gunicorn's master process uses the same JSON format
(gunicorn.conf.py) before any settings exist.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from typing import Any

from pythonjsonlogger.json import JsonEncoder, JsonFormatter

# Commands that serve requests: they log on stdout, as gunicorn does.
SERVER_COMMANDS = frozenset({"runserver", "testserver"})


class _Route:
    commands_to_stderr = False


_route = _Route()


def route_command_logs(argv: Sequence[str]) -> None:
    """Send log lines to stderr for the rest of this process, unless `argv` runs a server command."""
    command = argv[1] if len(argv) > 1 else ""
    _route.commands_to_stderr = command not in SERVER_COMMANDS


class ConsoleStream:
    """A stream that writes to the process's stdout, or to its stderr while a command runs.

    The target is looked up at each write, so a test's captured stdout is honoured too.
    """

    def _target(self) -> Any:
        return sys.stderr if _route.commands_to_stderr else sys.stdout

    def write(self, text: str) -> int:
        written: int = self._target().write(text)
        return written

    def flush(self) -> None:
        self._target().flush()


class ConsoleHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The service's one log handler: JSON lines on stdout, or on stderr in a management command."""

    def __init__(self) -> None:
        super().__init__(ConsoleStream())


class _Encoder(JsonEncoder):
    """The library's encoder, except that an object whose text is only its repr is written as its type's name."""

    def default(self, o: Any) -> Any:
        value = super().default(o)
        if isinstance(value, str) and value.startswith("<") and value.endswith(">"):
            return type(o).__name__
        return value


class LogFormatter(JsonFormatter):
    """One JSON object per line, carrying no Python object's repr.

    Django's request loggers pass the request object (`django.request`,
    `django.security.*`) or the client socket (`django.server`) as `request`: the
    first is written as "METHOD /path", the second is left out. Any other value that
    has nothing to say but its repr is written as its type's name.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("json_encoder", _Encoder)
        super().__init__(*args, **kwargs)

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        request = log_data.pop("request", None)
        if hasattr(request, "method") and hasattr(request, "path"):
            log_data["request"] = f"{request.method} {request.path}"
        elif isinstance(request, str):
            log_data["request"] = request
        return log_data


def json_formatter() -> dict[str, Any]:
    """Return the dictConfig entry of the JSON formatter (settings.LOGGING, and gunicorn's own lines)."""
    return {
        "()": "core.logs.LogFormatter",
        "fmt": "%(levelname)s %(name)s %(message)s",
        "rename_fields": {"levelname": "level", "name": "logger"},
        "timestamp": "time",
    }
