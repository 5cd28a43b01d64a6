"""Turning exceptions into the one-line errors that rows, logs and responses carry."""

from __future__ import annotations

MAX_ERROR_LENGTH = 2000


def one_line(exc: BaseException, limit: int = MAX_ERROR_LENGTH) -> str:
    """Return `Type: message` on one line, without a stack trace, at most `limit` characters."""
    message = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"
