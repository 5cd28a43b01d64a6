"""Domain errors of the background-job queue."""

from __future__ import annotations

from django.db.transaction import TransactionManagementError


class InvalidJob(Exception):
    """An enqueue request is invalid; nothing was written."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class UnknownKind(InvalidJob):
    """No handler is registered for the job kind."""


class HandlerTransactionError(TransactionManagementError):
    """A handler left its transaction unusable (or closed it): the job fails with this, saying what it left.

    Its `__cause__` is the database error the handler caught, when there was one.
    """
