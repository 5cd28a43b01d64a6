"""Group commit: a runner thread's jobs run many to a transaction, each under a savepoint of its own.

A group is one transaction on the thread's connection. Each job of it is started
as before (its lease renewed and its start stamped through the claim's fence, on
the lease connection, just before its handler: jobs.lease; in a group, the leases are
renewed together when it opens and each start is sent without waiting for its answer:
jobs.lease_pipeline), its handler runs under
its own savepoint, and the group's success marks are written together, by one
UPDATE fenced on every job's claim, just before the group's one COMMIT. So a job's
writes and its success mark still commit together or not at all, and the WAL flush of
a commit is paid once per group instead of once per job.

- A failing handler rolls back to its savepoint: its writes are gone, its neighbours'
  kept; its retry or burial (and dead letter) is written in the group.
- A group ends after JOBS_GROUP_MAX_JOBS jobs, and before the next job starts once it
  has been open JOBS_GROUP_MAX_MS: a success waits for its commit at most that long,
  plus the handler running when the bound passes.
- A crash before the commit loses the whole group, and nothing else: every job of it
  is still `running` under this claim, with no success mark and none of its writes,
  and comes back through lease recovery (its handler started: the attempt is spent).
- A group whose marks do not all match (a lease lost while the group was open: a
  handler that outlived the lease without heartbeats) is rolled back whole and its
  jobs run again one at a time, each through a new start, so a job whose claim is
  gone is skipped then (`lease_lost`), and the others commit on their own.
- A group whose COMMIT fails (a deferred constraint a handler's writes violate: Django's
  foreign keys on PostgreSQL are checked at COMMIT) is rolled back whole and its jobs
  run again the same way: the job whose writes are refused fails then, alone, with the
  error (a group of one whose COMMIT fails records its job's failure in a transaction
  of its own), and the others commit, their attempt not spent again. A COMMIT that
  fails because the connection is gone is raised, as any lost connection.

The savepoint is taken lazily, just before the handler's first statement on the
thread's connection (an execute wrapper): a handler that never touches the database
costs no savepoint, and one that does has every statement under it. Statements sent
around Django (on `connection.connection`, psycopg's own connection) are not seen, and
so not undone with a failing handler's savepoint. A successful job's savepoint is not
released (that is one more round trip, and frees nothing: PostgreSQL keeps a
subtransaction's id until the top commit): JOBS_GROUP_MAX_JOBS stays at most 64, the
subtransactions PostgreSQL caches per session before other sessions' snapshots
overflow to pg_subtrans.

Without a lease connection of its own (SQLite, where renewals stay on the thread's
connection), a job's start would commit with its group, not before its handler, so
each job is a group of one there (unless the caller's own transaction holds it all).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.db.transaction import TransactionManagementError

from core.errors import one_line
from jobs.claim import Clock, Outcome, record_failure
from jobs.context import JobContext, RunOrigin
from jobs.lease import LeaseConnection
from jobs.models import BackgroundJob
from jobs.outcome import return_value_stored
from jobs.registry import resolve_handler
from jobs.savepoint import LazySavepoint

logger = logging.getLogger(__name__)

# The success marks of a group, one statement (PostgreSQL): each job's row matches only
# through its own claim (attempt number and worker name), as every update after the claim.
# The group's records travel as one JSON document: one parameter to send, not five arrays.
_TABLE = BackgroundJob._meta.db_table
_SUCCEED_MANY_SQL = (
    f"UPDATE {_TABLE} AS job SET status = %s, finished_at = done.finished_at, "  # noqa: S608 (constants only)
    "lease_expires_at = NULL, last_error = '', return_value = done.return_value "
    "FROM jsonb_to_recordset(%s::jsonb) "
    "AS done(id bigint, attempts integer, locked_by text, finished_at timestamptz, return_value jsonb) "
    "WHERE job.id = done.id AND job.status = %s AND job.attempts = done.attempts AND job.locked_by = done.locked_by"
)
# One job's mark (a group of one, and SQLite, which has no arrays).
_SUCCEED_SQL = (
    f"UPDATE {_TABLE} SET status = %s, finished_at = %s, lease_expires_at = NULL, "  # noqa: S608
    "last_error = '', return_value = %s WHERE id = %s AND status = %s AND attempts = %s AND locked_by = %s"
)
_RETURN_VALUE = BackgroundJob._meta.get_field("return_value")
RUNNING, SUCCEEDED = BackgroundJob.Status.RUNNING, BackgroundJob.Status.SUCCEEDED


@dataclass(frozen=True)
class _Success:
    job: BackgroundJob
    finished_at: datetime
    return_value: Any


class _MarksLost(Exception):
    """Some success marks of the group matched no claim: the group is rolled back."""


class JobGroup:
    """Run claimed jobs, many to a transaction; `count(outcome)` is told each job's outcome once it is final.

    Use it as a context manager: leaving it commits the open group, or, on an
    exception, rolls it back (the jobs then come back through lease recovery).
    """

    def __init__(
        self,
        *,
        clock: Clock,
        origin: RunOrigin,
        lease: LeaseConnection,
        count: Callable[[Outcome], None],
        max_jobs: int | None = None,
    ) -> None:
        self.clock, self.origin, self.lease, self.count = clock, origin, lease, count
        grouped = lease.separate or connection.in_atomic_block
        self.max_jobs = (max_jobs or settings.JOBS_GROUP_MAX_JOBS) if grouped else 1
        self.max_seconds = settings.JOBS_GROUP_MAX_MS / 1000
        self._atomic: transaction.Atomic | None = None
        self._opened: float | None = None  # when the group opened: its leases renewed, or its first job started
        self._asked: set[int] = set()  # the jobs whose leases the group renewed together (pipelined starts)
        self._held: set[int] = set()  # those of them still held
        self._ran: list[BackgroundJob] = []
        self._successes: list[_Success] = []
        self._failures: list[Outcome] = []

    def __enter__(self) -> JobGroup:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: Any) -> None:
        if kind is None:
            self.commit()
        elif self._atomic is not None:
            atomic, self._atomic = self._atomic, None
            atomic.__exit__(kind, error, traceback)

    def run(self, job: BackgroundJob, *, upcoming: Sequence[BackgroundJob] = ()) -> None:
        """Start `job` if its claim still holds and run its handler in the group (committing the group first if due).

        `upcoming` are the jobs that follow it in its batch: a group that opens
        renews their leases with its first job's (jobs.lease_pipeline).
        """
        if self._opened is not None and time.monotonic() - self._opened >= self.max_seconds:
            self.commit()
        pipelined = self.lease.separate and self.max_jobs > 1
        if pipelined and job.pk not in self._asked:
            self.commit()
            asked = [job, *upcoming][: self.max_jobs]
            self._held = self.lease.renew_all(asked, now=self.clock())
            self._asked, self._opened = {each.pk for each in asked}, time.monotonic()
        started_at = self.clock()
        if pipelined:
            held = job.pk in self._held
            if held:
                self.lease.start_sent(job, now=started_at)
        else:
            held = self.lease.start(job, now=started_at)
        if not held:
            logger.warning(
                "job lease lost before its handler started: skipped",
                extra={"action": "job_run", "jobId": job.pk, "attempt": job.attempts, **self.origin.log_fields()},
            )
            self.count("lease_lost")
            return
        job.started_at = started_at
        if self._atomic is None:
            self._atomic = transaction.atomic()
            self._atomic.__enter__()
            self._opened = self._opened or time.monotonic()
        self._ran.append(job)
        self._run_handler(job, started_at)
        if len(self._ran) >= self.max_jobs:
            self.commit()

    def commit(self) -> None:
        """Write the open group's success marks and commit it (nothing to do when no group is open)."""
        self._opened, self._asked, self._held = None, set(), set()
        if self._atomic is None:
            return
        atomic, ran, successes, failures = self._atomic, self._ran, self._successes, self._failures
        self._atomic, self._ran, self._successes, self._failures = None, [], [], []
        try:
            # Every start of the group answered, and matched its claim; every mark matches too.
            if self.lease.settle() or _mark_succeeded(successes) != len(successes):
                raise _MarksLost
        except _MarksLost as exc:
            atomic.__exit__(_MarksLost, exc, None)  # rolled back: no job of it keeps its writes
            self._run_again(ran)
            return
        except BaseException as exc:
            atomic.__exit__(type(exc), exc, exc.__traceback__)
            raise
        try:
            atomic.__exit__(None, None, None)
        except DatabaseError as exc:  # the COMMIT refused (a deferred constraint): the Atomic rolled the group back
            if not _still_connected():
                raise  # the connection is gone (a restart): the worker reconnects, leases bring the jobs back
            self._run_again(ran, refused=exc)
            return
        for _ in successes:
            self.count("succeeded")
        for outcome in failures:
            self.count(outcome)

    def _run_handler(self, job: BackgroundJob, started_at: datetime) -> None:
        context = JobContext(
            job_id=job.pk,
            kind=job.kind,
            tenant=job.tenant,
            payload=job.payload,
            attempt=job.attempts,
            max_attempts=job.max_attempts,
            started_at=started_at,
            _heartbeat=lambda: self.lease.renew(job, now=self.clock()),
            job=job,
        )
        handler = resolve_handler(job.kind)
        try:
            with LazySavepoint():
                if handler is None:
                    raise LookupError(f"no handler for kind {job.kind!r}; is its module in JOB_HANDLER_MODULES?")
                returned = return_value_stored(handler(context))
                if connection.needs_rollback:
                    raise TransactionManagementError(
                        "the handler left its transaction marked for rollback (a database error it caught "
                        "outside its own transaction.atomic(), or transaction.set_rollback(True))"
                    )
        except Exception as exc:  # A handler may raise anything: the job records it and is retried.
            self.lease.read_answers()  # the job's own start must be done before its row is written here
            self._failures.append(record_failure(job, exc=exc, now=self.clock(), origin=self.origin))
            return
        self._successes.append(_Success(job=job, finished_at=self.clock(), return_value=returned))
        logger.debug("job succeeded", extra={"action": "job_run", "jobId": job.pk, "kind": job.kind})

    def _run_again(self, ran: list[BackgroundJob], *, refused: DatabaseError | None = None) -> None:
        """Run the jobs of a rolled-back group again, one group each, so that a failure falls on its own job.

        Without `refused`, the group's marks did not all match: a group of one that
        fails so lost its lease. With it, the group's COMMIT refused its writes: a group
        of one that fails so has its job fail with that error (recorded in a transaction
        of its own), and its neighbours, run again each in its own, are not charged for it.
        """
        if refused is not None and len(ran) == 1:
            [job] = ran
            self.count(record_failure(job, exc=refused, now=self.clock(), origin=self.origin))
            return
        if refused is None and self.max_jobs == 1:
            [job] = ran
            logger.warning("job lease lost", extra={"action": "job_run", "jobId": job.pk, **self.origin.log_fields()})
            self.count("lease_lost")
            return
        why = "a lease was lost while the group ran" if refused is None else "its COMMIT failed"
        logger.warning(
            f"group commit: {why}; running its jobs again one at a time",
            extra={
                "action": "job_run",
                "jobIds": [job.pk for job in ran],
                **({} if refused is None else {"error": one_line(refused)}),
                **self.origin.log_fields(),
            },
        )
        grouped, self.max_jobs = self.max_jobs, 1
        try:
            for job in ran:
                self.run(job)
        finally:
            self.max_jobs = grouped


def _still_connected() -> bool:
    """Return whether the thread's connection still answers (a refused COMMIT leaves it usable, a lost one not)."""
    return connection.connection is not None and connection.is_usable()


def _done_record(done: _Success) -> dict[str, Any]:
    """Return one success as the marks' JSON record; a job that returned nothing keeps a NULL return value."""
    job = done.job
    record = {
        "id": job.pk,
        "attempts": job.attempts,
        "locked_by": job.locked_by,
        "finished_at": done.finished_at.isoformat(),
    }
    if done.return_value is not None:
        record["return_value"] = done.return_value
    return record


def _mark_succeeded(successes: list[_Success]) -> int:
    """Mark `successes` succeeded through their claims; return how many matched."""
    if not successes:
        return 0
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql" and len(successes) > 1:
            cursor.execute(
                _SUCCEED_MANY_SQL,
                [SUCCEEDED, json.dumps([_done_record(done) for done in successes]), RUNNING],
            )
            matched: int = cursor.rowcount
            return matched
        matched = 0
        for done in successes:
            job, value = done.job, done.return_value
            stored = None if value is None else _RETURN_VALUE.get_db_prep_save(value, connection)
            cursor.execute(
                _SUCCEED_SQL, [SUCCEEDED, done.finished_at, stored, job.pk, RUNNING, job.attempts, job.locked_by]
            )
            matched += cursor.rowcount
        return matched
