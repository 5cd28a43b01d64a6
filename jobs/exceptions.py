"""Domain errors of the background-job queue, and the mark of a failure no retry can mend."""

from __future__ import annotations

from typing import TypeVar

from django.db.transaction import TransactionManagementError

E = TypeVar("E", bound=BaseException)

# Set on an exception (not a class of its own), so that the failure keeps its class: a
# non-JSON return value is still the framework's TypeError, a missing task an ImportError.
_NOT_RETRIABLE = "orchestrator_not_retriable"


class InvalidJob(Exception):
    """An enqueue request is invalid; nothing was written."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


class UnknownKind(InvalidJob):
    """No handler is registered for the job kind."""


def not_retriable(exc: E) -> E:
    """Mark `exc` as a failure that would happen again on every attempt, and return it: its job is buried at once."""
    setattr(exc, _NOT_RETRIABLE, True)
    return exc


def retriable(exc: BaseException) -> bool:
    """Return whether another attempt could end otherwise than with `exc`."""
    return not getattr(exc, _NOT_RETRIABLE, False)


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
