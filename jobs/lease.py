"""Where a runner thread renews its claims: a connection of its own, so a renewal is seen when it is made.

A handler runs in a transaction on the thread's connection. A lease renewed in
that transaction would stay invisible until the handler commits (maintenance would
take the job back from a live worker) and would hold the job's row locked all the
while (an operator's action on it would wait). So on PostgreSQL each runner thread
renews on a second connection, in autocommit: the renewal before a handler starts
and every heartbeat commit at once, whatever the thread's own transaction does.

That second connection cannot see rows the thread has not committed: when the
runner is called inside a transaction (a caller's `atomic` block, as the tests'
own transaction), and on SQLite (one writer, no row locks), renewals stay on the
thread's connection.

A renewal is fenced on the claim (job, attempt number, worker): it matches nothing
once the job was taken back or claimed by another worker.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, TypeVar

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, Error, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper

from core.sql import ASYNC_COMMIT
from jobs.lease_pipeline import StampPipeline
from jobs.models import BackgroundJob

T = TypeVar("T")

# On its own connection, each renewal is a transaction of its own that need not wait
# for the WAL flush: it is visible at once, and the log is replayed in order, so a
# crash can lose a renewal only together with every later commit (the handler's
# own included). The setting is made from within the statement (no round trip, and
# nothing left on a pooled server connection); inside a caller's transaction it
# would reach the handler's commit too, so there it is left out.
_COLUMNS = {"start": "lease_expires_at = %s, started_at = %s", "renew": "lease_expires_at = %s"}
_STATEMENTS = {  # by (separate connection?, renewal)
    (separate, name): f"UPDATE {BackgroundJob._meta.db_table} SET {columns}"  # noqa: S608 (constants only)
    f"{f' FROM {ASYNC_COMMIT}' if separate else ''} WHERE id = %s AND status = %s AND attempts = %s AND locked_by = %s"
    for separate in (True, False)
    for name, columns in _COLUMNS.items()
}


def longest_safe_budget() -> float:
    """Return the longest drain budget that is safely below the job lease: half of JOBS_LEASE_SECONDS.

    A drain claims its batch at its start and reaches the batch's last job near its
    end: with at most half the lease spent by then, a healthy worker's claims never
    expire under it (manage.py check refuses longer budgets in settings).
    """
    return float(settings.JOBS_LEASE_SECONDS) / 2


class LeaseConnection:
    """Renew the leases of one runner thread's claims, on its own connection or on the thread's."""

    def __init__(self, *, separate: bool) -> None:
        self.separate = separate
        self._own: BaseDatabaseWrapper | None = None
        self._pipeline: StampPipeline | None = None

    @classmethod
    def for_this_thread(cls) -> LeaseConnection:
        """Return a separate connection, unless this thread's claims would be invisible to one.

        Inside kept_for_this_thread() it is the thread's kept one, which stays open after the drain.
        """
        kept: LeaseConnection | None = getattr(_kept, "lease", None)
        if kept is not None and not connection.in_atomic_block:
            return kept
        return cls(separate=connection.vendor == "postgresql" and not connection.in_atomic_block)

    def start(self, job: BackgroundJob, *, now: datetime) -> bool:
        """Renew the lease and stamp the handler's start; return False when the claim is no longer ours."""
        return self._execute("start", [_expiry(now), now, *_claim(job)])

    def renew(self, job: BackgroundJob, *, now: datetime) -> bool:
        """Renew the lease (a heartbeat); return False when the claim is no longer ours."""
        return self._execute("renew", [_expiry(now), *_claim(job)])

    def renew_all(self, jobs: Sequence[BackgroundJob], *, now: datetime, beat: bool = False) -> set[int]:
        """Renew the leases of `jobs` in one statement (a separate connection only); return the ids still held.

        A heartbeat (`beat`, while a group is open) skips the rows locked by that group (jobs.lease_pipeline).
        """
        return self._on_pipeline(lambda pipeline: pipeline.renew_all(jobs, expires=_expiry(now), beat=beat))

    def start_sent(self, job: BackgroundJob, *, now: datetime) -> None:
        """Send the renewal and start stamp of `job` without waiting for its answer (jobs.lease_pipeline)."""
        self._on_pipeline(lambda pipeline: pipeline.send(job, expires=_expiry(now), now=now))

    def read_answers(self) -> None:
        """Wait for the answers of the starts sent (keeping which matched nothing, for settle())."""
        if self._pipeline is not None:
            self._on_pipeline(lambda pipeline: pipeline.read_answers())

    def settle(self) -> list[int]:
        """Wait for the answers of the starts sent; return the ids of the jobs whose claim was gone."""
        if self._pipeline is None:
            return []
        return self._on_pipeline(lambda pipeline: pipeline.settle())

    def close(self) -> None:
        """Close the separate connection, if one was opened."""
        self._pipeline = None
        if self._own is not None:
            self._own.close()
            self._own = None

    def __enter__(self) -> LeaseConnection:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if self is not getattr(_kept, "lease", None):
            self.close()

    def _execute(self, name: str, params: list[Any]) -> bool:
        if not self.separate:
            with connection.cursor() as cursor:
                cursor.execute(_STATEMENTS[False, name], params)
                return bool(cursor.rowcount == 1)

        # psycopg's own connection, under Django's error translation: a renewal runs once per
        # job, and Django's cursor wrapper costs as much as the statement's round trip here.
        def execute(pipeline: StampPipeline) -> bool:
            pipeline.read_answers()
            return bool(pipeline.connection.execute(_STATEMENTS[True, name], params).rowcount == 1)

        return self._on_pipeline(execute)

    def _on_pipeline(self, work: Callable[[StampPipeline], T]) -> T:
        """Do `work` on the separate connection, its errors Django's; a broken connection is closed, to be reopened."""
        own = self._connection()
        if self._pipeline is None or self._pipeline.connection is not own.connection:
            self._pipeline = StampPipeline(own.connection)
        try:
            with own.wrap_database_errors:
                return work(self._pipeline)
        except Error:
            self.close()  # a broken connection (the server restarted): the next renewal opens a new one
            raise

    def _connection(self) -> BaseDatabaseWrapper:
        if self._own is None:
            self._own = connections.create_connection(DEFAULT_DB_ALIAS)  # autocommit, not shared
        self._own.ensure_connection()
        return self._own


_kept = threading.local()


@contextmanager
def kept_for_this_thread() -> Iterator[LeaseConnection]:
    """Keep this thread's lease connection open from one drain to the next (a standing worker); close it at the end.

    Opening a connection costs milliseconds: a worker woken for one job would pay
    them before the job's start.
    """
    _kept.lease = LeaseConnection(separate=connection.vendor == "postgresql")
    try:
        yield _kept.lease
    finally:
        lease, _kept.lease = _kept.lease, None
        lease.close()


def _expiry(now: datetime) -> datetime:
    return now + timedelta(seconds=settings.JOBS_LEASE_SECONDS)


def _claim(job: BackgroundJob) -> list[Any]:
    return [job.pk, BackgroundJob.Status.RUNNING, job.attempts, job.locked_by]
