"""Domain errors of the background-job queue."""

from __future__ import annotations


class InvalidJob(Exception):
    """An enqueue request is invalid; nothing was written."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class UnknownKind(InvalidJob):
    """No handler is registered for the job kind."""
