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


class AttemptLost(Exception):
    """An attempt that ended without an outcome from its handler, recorded on its job as the attempt's error.

    Never raised: the queue writes one on the job when it takes the job back
    (docs/jobs.md, "When a worker goes away"). Its notes say which worker, and when.
    """


class LeaseExpired(AttemptLost):
    """The attempt's lease expired before its worker finished it: the worker stopped, or went silent."""


class ConnectionLost(AttemptLost):
    """The attempt's worker lost its database connection while the attempt was open: its writes rolled back."""


class JobCancelled(Exception):
    """An operator cancelled the job: it never runs again (recorded on the job as its last error)."""
