"""Turning exceptions into the one-line errors that rows, logs and responses carry."""

from __future__ import annotations

import re

MAX_ERROR_LENGTH = 2000


def one_line(exc: BaseException, limit: int = MAX_ERROR_LENGTH) -> str:
    """Return `Type: message` on one line, without a stack trace, at most `limit` characters."""
    try:
        message = str(exc)
    except Exception:  # an exception whose message cannot be made still has its type
        message = ""
    return squash(f"{type(exc).__name__}: {message}" if message.strip() else type(exc).__name__, limit)


def squash(text: str, limit: int = MAX_ERROR_LENGTH) -> str:
    """Return `text` on one line (whitespace runs collapsed), at most `limit` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


FINGERPRINT_LENGTH = 200
_TYPE = re.compile(r"([A-Za-z_][\w.]*)(?:: (.*))?", re.DOTALL)
# Masked in this order: the longer shapes first, so a UUID or a time is not read as numbers.
_MASKS = (
    (re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"), "<uuid>"),
    (
        re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?"),
        "<time>",
    ),
    (re.compile(r"\b\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?\b"), "<time>"),
    (re.compile(r"\b0x[0-9a-fA-F]+\b"), "<hex>"),
    (re.compile(r"\b(?=[0-9a-fA-F]*[a-fA-F])(?=[0-9a-fA-F]*[0-9])[0-9a-fA-F]{8,}\b"), "<hex>"),
    (re.compile(r"\d+"), "<n>"),
)


def error_fingerprint(error: str) -> str:
    """Return the cause of a one-line error: its type, and its message with ids, numbers, hex and times masked.

    Failures of one cause share it however their ids and times differ:
    `ConnectionError: upstream 10.0.0.7:443 refused job 812` and `... 10.0.0.9:443 refused job 97` both give
    `ConnectionError: upstream <n>.<n>.<n>.<n>:<n> refused job <n>`. The type itself is kept as written.
    """
    first = squash(error.strip().splitlines()[0] if error.strip() else "", 10 * FINGERPRINT_LENGTH)
    match = _TYPE.fullmatch(first)
    kind, message = (match[1], match[2] or "") if match and match[2] is not None else ("", first)
    for pattern, mask in _MASKS:
        message = pattern.sub(mask, message)
    text = f"{kind}: {message}" if kind else message
    return text if len(text) <= FINGERPRINT_LENGTH else text[: FINGERPRINT_LENGTH - 1] + "…"
