"""One handler's run on the thread's connection: its savepoint in a group, and what it left judged once it ends.

In a group (jobs.group) a handler runs under a savepoint of its own, taken just
before its first statement on the thread's connection (an execute wrapper: a handler
that never touches the database costs no savepoint). When it ends, what it left is
read from Django's own state and psycopg's `transaction_status` (local attributes,
no round trip), and judged:

- nothing amiss: its writes stay, for the group's COMMIT; the commit callbacks it
  registered will run after that COMMIT, each failure logged, not raised;
- it raised, or left its transaction unusable (a database error it caught and went on
  from, `set_rollback(True)`, an atomic block left open): Django's state is put back
  as it was before the handler (as `Atomic.__exit__` does: `needs_rollback` cleared
  first, or Django refuses the rollback), the transaction is rolled back to the
  savepoint (its writes and commit callbacks gone) and the job fails, with
  HandlerTransactionError saying what it left when it raised nothing;
- it closed or replaced the connection, ended the transaction (a COMMIT or ROLLBACK
  statement: psycopg's status is idle), or a statement it sent around Django (on
  `connection.connection`) aborted the transaction outside its savepoint: no savepoint
  undoes that, so GroupLost is raised and jobs.group rolls the whole group back;
- the connection was lost to the server: OperationalError, as any lost connection.

Outside a group (an `@autocommit` job) there is no savepoint: its statements
commit as they run; a block left open or autocommit left off is rolled back and fails
the job, and closing the connection is allowed. What a handler may do:
docs/jobs.md#what-a-handler-may-do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError, OperationalError
from django.db.backends.base.base import BaseDatabaseWrapper
from psycopg import pq

from core.database import CONNECTION_ERRORS
from core.errors import one_line
from jobs import interrupts
from jobs.exceptions import HandlerTransactionError

logger = logging.getLogger(__name__)

IN_FAILED_TRANSACTION = "25P02"  # PostgreSQL's refusal of a statement after an error, until a rollback
DOCS = "docs/jobs.md#what-a-handler-may-do"
CAUGHT = (
    "the handler caught {error} and went on: its transaction cannot be used after a database error until it is "
    "rolled back, so its writes are undone; let the error propagate, or run the statement that may fail in a "
    f"transaction.atomic() block of its own ({DOCS})"
)
MARKED = (
    "the handler marked its transaction for rollback (transaction.set_rollback(True), or an exception out of a "
    "transaction.atomic(savepoint=False) block) and returned: its writes are undone; raise an exception to fail a "
    f"job, and let a block whose exception is caught take its savepoint ({DOCS})"
)
LEFT_OPEN = "the handler left {count} transaction.atomic() block{s} open: its writes are undone ({docs})"
AUTOCOMMIT_OFF = f"the handler turned autocommit off and left its transaction open: it is rolled back ({DOCS})"
CLOSED = (
    "the handler closed the database connection (connection.close(), close_old_connections()) inside its job's "
    "transaction, which went with it, and so did the writes of the jobs before it in its group (they run again); "
    f"close no connection in a handler, or mark its task or handler @autocommit ({DOCS})"
)
ENDED = (
    "the handler ended its group's transaction (a COMMIT or ROLLBACK statement, through a cursor or on "
    "connection.connection): the jobs before it in its group run again, over what a COMMIT kept of their writes; "
    f"use transaction.atomic() blocks in a handler, or mark its task or handler @autocommit ({DOCS})"
)
LEFT_GROUP = (
    "the handler left its group's own transaction.atomic() block (it exited a block it had not entered): its "
    f"whole group is rolled back ({DOCS})"
)
AROUND = (
    "a statement the handler sent around Django (on connection.connection) failed before any statement of its own "
    f"through Django: no savepoint of its own covers it, so its whole group is rolled back ({DOCS})"
)


class GroupLost(Exception):
    """A handler left its group's transaction beyond its savepoint's reach: the group is rolled back whole."""

    def __init__(self, failure: BaseException) -> None:
        super().__init__(one_line(failure))
        self.failure = failure  # the job's own failure


class Isolation:
    """Run one handler on the thread's connection (use as a context manager around it), then judge() what it left."""

    def __init__(self, db: BaseDatabaseWrapper, *, grouped: bool, job_id: int) -> None:
        self.db = db  # the thread's connection (not the proxy: each of its attributes costs a lookup)
        self.grouped = grouped
        self.job_id = job_id
        self.sid: str | None = None
        self.caught: DatabaseError | None = None  # the last error a statement of the handler caused
        self._taking = False

    def __enter__(self) -> Isolation:
        self._raw = self.db.connection
        self._began = _in_transaction(self.db, self._raw)  # the group's transaction began before this handler
        self._blocks, self._saved = len(self.db.atomic_blocks), len(self.db.savepoint_ids)
        self._callbacks, self._wrappers = len(self.db.run_on_commit), len(self.db.execute_wrappers)
        self._marked_by = getattr(self.db, "rollback_exc", None)
        self.db.execute_wrappers.append(self)
        return self

    def __exit__(self, *exc_info: object) -> None:
        del self.db.execute_wrappers[self._wrappers :]  # with any a handler left in place

    def __call__(self, execute: Callable[..., Any], sql: str, params: Any, many: bool, context: Any) -> Any:
        if self.grouped and self.sid is None and not self._taking:
            self._taking = True  # the SAVEPOINT statement itself passes through this wrapper
            try:
                sid = self.db.savepoint()
            finally:
                self._taking = False
            assert sid is not None, "the group's transaction is open, so a savepoint is allowed"
            self.sid = sid
            self.db.savepoint_ids.append(sid)  # on Django's stack: commit callbacks registered now are tied to it
        try:
            return execute(sql, params, many, context)
        except DatabaseError as exc:
            if getattr(exc.__cause__, "sqlstate", None) != IN_FAILED_TRANSACTION:  # not a consequence of an earlier one
                self.caught = exc
            raise

    def judge(self, raised: BaseException | None) -> BaseException | None:
        """Return the job's failure (`raised`, or what the handler left amiss) with its work undone; None: success.

        Raise GroupLost when the group's transaction is beyond the savepoint's reach,
        and OperationalError (or the handler's own connection error) when the
        connection was lost to the server.
        """
        raw = self.db.connection
        if _broken(self.db, raw):
            if isinstance(raised, CONNECTION_ERRORS):
                raise raised
            raise OperationalError(f"the database connection was lost while job {self.job_id} ran") from raised
        if not self.grouped:
            return self._judge_autocommit(raised)
        if raw is not self._raw or self.db.closed_in_transaction or _closed(self.db, raw):
            raise GroupLost(_with_cause(HandlerTransactionError(CLOSED), raised))
        if (self._began or self.sid is not None) and _ended(self.db, raw):  # its SAVEPOINT began it, if nothing had
            raise GroupLost(_with_cause(HandlerTransactionError(ENDED), raised))
        if len(self.db.atomic_blocks) < self._blocks:  # it left its group's own block: nothing is as it was
            raise GroupLost(raised or HandlerTransactionError(LEFT_GROUP))
        amiss, aborted = self._amiss(raw)
        if raised is None and amiss is None:
            del self.db.savepoint_ids[self._saved :]
            self._guard_callbacks()
            return None
        failure = raised or _with_cause(HandlerTransactionError(amiss), self.caught)
        if aborted and self.sid is None:
            raise GroupLost(raised or HandlerTransactionError(AROUND))
        self._undo(failure)
        return failure

    def _amiss(self, raw: Any) -> tuple[str | None, bool]:
        """Return what the handler left amiss in its group's transaction (None: nothing), and whether it is aborted."""
        aborted = _aborted(self.db, raw)
        if (left := len(self.db.atomic_blocks) - self._blocks) > 0:
            return LEFT_OPEN.format(count=left, s="" if left == 1 else "s", docs=DOCS), aborted
        if self.db.needs_rollback:
            marked_by = getattr(self.db, "rollback_exc", None)  # set by the ORM on the error it marked for
            if marked_by is not None and marked_by is not self._marked_by:
                self.caught = marked_by
                return CAUGHT.format(error=one_line(marked_by)), aborted
            return MARKED, aborted
        if aborted:
            return CAUGHT.format(error=one_line(self.caught) if self.caught else "a database error"), aborted
        return None, aborted

    def _undo(self, failure: BaseException) -> None:
        """Put Django's state back as before the handler and roll back to its savepoint, as Atomic.__exit__ would."""
        del self.db.atomic_blocks[self._blocks :]
        del self.db.savepoint_ids[self._saved :]
        self.db.needs_rollback = False  # Django refuses every statement, the rollback too, while it is set
        if self.sid is not None:
            try:
                self.db.savepoint_rollback(self.sid)
            except DatabaseError as exc:  # the savepoint is gone: a COMMIT or ROLLBACK sent around Django
                if _broken(self.db, self.db.connection):
                    raise
                raise GroupLost(failure) from exc
        del self.db.run_on_commit[self._callbacks :]  # those registered before its first statement too

    def _judge_autocommit(self, raised: BaseException | None) -> BaseException | None:
        """Judge a handler run outside any transaction: a transaction it left open is rolled back and fails it."""
        if self.db.connection is None:
            return raised  # it closed the connection: allowed outside a group
        left = len(self.db.atomic_blocks) - self._blocks
        if left > 0:
            amiss: str | None = LEFT_OPEN.format(count=left, s="" if left == 1 else "s", docs=DOCS)
        elif not self.db.autocommit:
            amiss = AUTOCOMMIT_OFF
        else:
            amiss = None
        if amiss is None:
            return raised
        del self.db.atomic_blocks[self._blocks :]
        del self.db.savepoint_ids[self._saved :]
        self.db.in_atomic_block, self.db.needs_rollback = False, False
        if self.db.closed_in_transaction:  # closed inside the block it left open: gone with it, as Atomic does
            self.db.connection = None
        else:
            self.db.rollback()
            self.db.set_autocommit(True)
        return raised or HandlerTransactionError(amiss)

    def _guard_callbacks(self) -> None:
        """Have the commit callbacks the handler registered log their failure instead of raising it after the COMMIT."""
        callbacks: list[Any] = self.db.run_on_commit  # (savepoint ids, callback, robust): the stubs know pairs
        for index in range(self._callbacks, len(callbacks)):
            sids, func, robust = callbacks[index]
            callbacks[index] = (sids, _logged(func, self.job_id), robust)


def _logged(func: Callable[[], Any], job_id: int) -> Callable[[], None]:
    def run() -> None:
        since = interrupts.arrivals()
        try:
            func()
        except BaseException as exc:  # the job's commit is done: its callback's failure is logged, the worker goes on
            if interrupts.is_signal(exc, since=since):
                raise
            logger.exception(
                "a job's commit callback failed after its group committed",
                extra={"action": "job_on_commit", "jobId": job_id, "error": one_line(exc)},
            )

    return run


def _broken(db: BaseDatabaseWrapper, raw: Any) -> bool:
    """Return whether psycopg's connection `raw` was lost to the server (not closed by code)."""
    return db.vendor == "postgresql" and raw is not None and bool(raw.broken)


def _closed(db: BaseDatabaseWrapper, raw: Any) -> bool:
    """Return whether psycopg's connection `raw` is closed, by code or by the server."""
    return db.vendor == "postgresql" and bool(raw.closed)


def _in_transaction(db: BaseDatabaseWrapper, raw: Any) -> bool:
    """Return whether a transaction is open on psycopg's connection `raw` (PostgreSQL's, whatever Django thinks)."""
    return (
        db.vendor == "postgresql" and raw is not None and raw.pgconn.transaction_status == pq.TransactionStatus.INTRANS
    )


def _ended(db: BaseDatabaseWrapper, raw: Any) -> bool:
    """Return whether no transaction is open on psycopg's connection `raw` (a COMMIT or ROLLBACK ended it)."""
    return db.vendor == "postgresql" and raw.pgconn.transaction_status == pq.TransactionStatus.IDLE


def _aborted(db: BaseDatabaseWrapper, raw: Any) -> bool:
    """Return whether PostgreSQL's transaction on `raw` is aborted (an error not rolled back)."""
    return db.vendor == "postgresql" and raw.pgconn.transaction_status == pq.TransactionStatus.INERROR


def _with_cause(error: BaseException, cause: BaseException | None) -> BaseException:
    error.__cause__ = cause
    return error
