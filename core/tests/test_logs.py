"""The JSON log lines carry values an operator can read, never a Python object's repr."""

from __future__ import annotations

import json
import logging
import socket
from datetime import UTC, datetime

from django.test import RequestFactory

from core.logs import LogFormatter, json_formatter


def formatted(**extra: object) -> dict[str, object]:
    options = {key: value for key, value in json_formatter().items() if key != "()"}
    record = logging.LogRecord("django.request", logging.WARNING, __file__, 1, "Not Found: /nope", None, None)
    record.__dict__.update(extra)
    return dict(json.loads(LogFormatter(**options).format(record)))


class Opaque:
    pass


def test_log_line__a_request_is_its_method_and_path() -> None:
    line = formatted(request=RequestFactory().post("/api/health"), status_code=405)

    assert (line["request"], line["status_code"], line["level"], line["logger"]) == (
        "POST /api/health",
        405,
        "WARNING",
        "django.request",
    )


def test_log_line__no_object_repr_reaches_it() -> None:
    with socket.socket() as client_socket:
        line = formatted(request=client_socket, opaque=Opaque(), at=datetime(2026, 3, 14, tzinfo=UTC))

    assert "request" not in line  # django.server's socket says nothing an operator can use
    assert (line["opaque"], line["at"]) == ("Opaque", "2026-03-14T00:00:00+00:00")
    assert "<" not in json.dumps(line)
