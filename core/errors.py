"""Turning exceptions into the one-line errors that rows, logs and responses carry."""

from __future__ import annotations

MAX_ERROR_LENGTH = 2000


def one_line(exc: BaseException, limit: int = MAX_ERROR_LENGTH) -> str:
    """Return `Type: message` on one line, without a stack trace, at most `limit` characters."""
    message = str(exc)
    return squash(f"{type(exc).__name__}: {message}" if message.strip() else type(exc).__name__, limit)


def squash(text: str, limit: int = MAX_ERROR_LENGTH) -> str:
    """Return `text` on one line (whitespace runs collapsed), at most `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
