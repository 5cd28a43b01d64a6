"""Group commit: a runner thread's jobs run many to a transaction, each handler isolated under a savepoint of its own.

A group is one transaction on the thread's connection. Each job of it is started
as before (its lease renewed and its start stamped through the claim's fence, on
the lease connection, just before its handler: jobs.lease; in a group, the leases are
renewed together when it opens and each start is sent without waiting for its answer:
jobs.lease_pipeline), its handler runs under its own savepoint and what it left of the
transaction is judged when it ends (jobs.isolation), and the group's success marks
are written together (jobs.marks) just before the group's one COMMIT. So a job's
writes and its success mark still commit together or not at all, and the WAL flush of
a commit is paid once per group instead of once per job.

- A handler that fails, or leaves its transaction unusable, is rolled back to its
  savepoint: its writes are gone, its neighbours' kept; its retry or burial (and dead
  letter) is written in the group.
- A group ends after JOBS_GROUP_MAX_JOBS jobs, and before the next job starts once it
  has been open JOBS_GROUP_MAX_MS: a success waits for its commit at most that long,
  plus the handler running when the bound passes. That handler's heartbeat renews
  the leases of every job of its group, so a job waiting for the commit keeps its
  lease as long as the running one keeps its own.
- A crash before the commit loses the whole group, and nothing else: every job of it
  is still `running` under this claim, with no success mark and none of its writes,
  and comes back through lease recovery (its handler started: the attempt is spent).
- A group that cannot be kept is rolled back whole and its jobs run again one per
  transaction, each through a new start, so that a failure falls on its own job and
  the others commit without spending another attempt: when its marks do not all match
  (a lease lost while it was open: a job whose claim is gone is skipped then,
  `lease_lost`), when its COMMIT fails (a deferred constraint a handler's writes
  violate: that job fails then, alone, with the error), when a handler left it beyond
  its savepoint's reach (it closed the connection: that job fails with the error that
  says so, and is not run again), and when anything else unexpected happens in this
  machinery (a job that meets it again, alone, fails with it). The jobs run again
  within the drain's budget and stop: those not run again when the budget runs out or
  the drain stops go back to the queue at once, their attempt given back (the first
  one always runs again unless the drain is stopping, so every drain makes progress).
- A lost connection, and a signal turned into an exception on the main thread, roll
  the group back and are raised: a `run_jobs --loop` worker reconnects and takes its
  jobs back (jobs.recovery); otherwise lease recovery returns them. (Django reconnects
  on its way out of the rollback when the server is back already: the connection the
  group was on tells that it was lost.)

A job whose task or handler is marked `@autocommit` runs outside the group: the
open group commits first, and its handler runs on the connection in autocommit, its
success marked by a statement of its own (inside a caller's own transaction, where no
autocommit can be had, it runs in the group as any job).

A successful job's savepoint is not released (that is one more round trip, and frees
nothing: PostgreSQL keeps a subtransaction's id until the top commit):
JOBS_GROUP_MAX_JOBS stays at most 64, the subtransactions PostgreSQL caches per session
before other sessions' snapshots overflow to pg_subtrans.

Without a lease connection of its own (SQLite, where renewals stay on the thread's
connection), a job's start would commit with its group, not before its handler, so
each job is a group of one there (unless the caller's own transaction holds it all).
The design, and what a handler may do: docs/jobs.md#group-commit.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from functools import partial
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connection, connections, transaction
from django.db.transaction import TransactionManagementError

from core.database import CONNECTION_ERRORS
from core.errors import one_line
from core.prometheus import after_commit
from jobs import interrupts
from jobs.claim import Clock, Outcome, give_back_undone, record_failure
from jobs.context import JobContext, RunOrigin
from jobs.isolation import GroupLost, Isolation
from jobs.lease import LeaseConnection
from jobs.marks import Success, mark_succeeded
from jobs.models import BackgroundJob
from jobs.observers import attempts_succeeded
from jobs.outcome import return_value_stored
from jobs.registry import Handler, resolve_handler, runs_in_autocommit

logger = logging.getLogger(__name__)


class _MarksLost(Exception):
    """Some success marks of the group matched no claim: the group is rolled back."""


class JobGroup:
    """Run claimed jobs, many to a transaction; `count(outcome)` is told each job's outcome once it is final.

    Use it as a context manager: leaving it commits the open group, or, on an
    exception, rolls it back (the jobs then come back through lease recovery).
    `deadline` (time.monotonic()) and `stop` bound the jobs of a rolled-back group
    run again.
    """

    def __init__(
        self,
        *,
        clock: Clock,
        origin: RunOrigin,
        lease: LeaseConnection,
        count: Callable[[Outcome], None],
        deadline: float = float("inf"),
        stop: threading.Event | None = None,
        max_jobs: int | None = None,
    ) -> None:
        self.clock, self.origin, self.lease, self.count = clock, origin, lease, count
        self.deadline, self.stop = deadline, stop or threading.Event()
        self.db = connections[DEFAULT_DB_ALIAS]  # the thread's own (the proxy costs a lookup per attribute)
        self.nested = self.db.in_atomic_block  # a caller's transaction holds every group
        self.max_jobs = (max_jobs or settings.JOBS_GROUP_MAX_JOBS) if lease.separate or self.nested else 1
        self.max_seconds = settings.JOBS_GROUP_MAX_MS / 1000
        self._atomic: transaction.Atomic | None = None
        self._raw: Any = None  # the connection (psycopg's) the open group's transaction is on
        self._blocks = self._saved = 0  # Django's atomic and savepoint stacks, with the open group's block
        self._opened: float | None = None  # when the group opened: its leases renewed, or its first job started
        self._asked: set[int] = set()  # the jobs whose leases the group renewed together (pipelined starts)
        self._held: set[int] = set()  # those of them still held
        self._ran: list[BackgroundJob] = []
        self._successes: list[Success] = []
        self._failures: list[Outcome] = []

    def __enter__(self) -> JobGroup:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, traceback: Any) -> None:
        if error is None:
            self.commit()
        else:
            self._abandon(error)

    def run(self, job: BackgroundJob, *, upcoming: Sequence[BackgroundJob] = ()) -> None:
        """Start `job` if its claim still holds and run its handler in the group (committing the group first if due).

        `upcoming` are the jobs that follow it in its batch: a group that opens
        renews their leases with its first job's (jobs.lease_pipeline).
        """
        try:
            self._run(job, upcoming)
        except BaseException as exc:
            if not self._recovered(exc, current=job):
                raise

    def commit(self) -> None:
        """Write the open group's success marks and commit it (nothing to do when no group is open)."""
        try:
            self._commit()
        except BaseException as exc:
            if not self._recovered(exc):
                raise

    def _run(self, job: BackgroundJob, upcoming: Sequence[BackgroundJob]) -> None:
        if self._opened is not None and time.monotonic() - self._opened >= self.max_seconds:
            self.commit()
        handler = _resolved(job.kind)
        if not self.nested and runs_in_autocommit(job.kind):
            self.commit()
            self._run_in_autocommit(job, handler)
            return
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
            self._lease_lost(job, "job lease lost before its handler started: skipped")
            return
        job.started_at = started_at
        if self._atomic is None:
            self._open()
        self._ran.append(job)
        failure, returned, ran_seconds = self._call(job, handler, grouped=True)
        if failure is not None:
            self.lease.read_answers()  # the job's own start must be done before its row is written here
            self._failures.append(record_failure(job, exc=failure, now=self.clock(), origin=self.origin))
        else:
            self._successes.append(
                Success(job=job, finished_at=self.clock(), return_value=returned, ran_seconds=ran_seconds)
            )
            logger.debug("job succeeded", extra={"action": "job_run", "jobId": job.pk, "kind": job.kind})
        if len(self._ran) >= self.max_jobs:
            self.commit()

    def _open(self) -> None:
        self._atomic = transaction.atomic()
        self._atomic.__enter__()
        self._raw = self.db.connection
        self._blocks, self._saved = len(self.db.atomic_blocks), len(self.db.savepoint_ids)
        self._opened = self._opened or time.monotonic()

    def _run_in_autocommit(self, job: BackgroundJob, handler: Handler) -> None:
        """Run `job` outside any group, its handler's statements committing as they run; mark it on its own."""
        started_at = self.clock()
        if not self.lease.start(job, now=started_at):
            self._lease_lost(job, "job lease lost before its handler started: skipped")
            return
        job.started_at = started_at
        failure, returned, ran_seconds = self._call(job, handler, grouped=False)
        if failure is not None:
            self.count(record_failure(job, exc=failure, now=self.clock(), origin=self.origin))
            return
        success = Success(job=job, finished_at=self.clock(), return_value=returned, ran_seconds=ran_seconds)
        if mark_succeeded([success]):
            after_commit(partial(attempts_succeeded, [success]))  # in autocommit: told at once
            self.count("succeeded")
        else:
            self._lease_lost(job, "job lease lost while its handler ran (its writes are committed)")

    def _call(self, job: BackgroundJob, handler: Handler, *, grouped: bool) -> tuple[BaseException | None, Any, float]:
        """Run `job`'s handler isolated; return its failure (None on success), the return value it stores and the
        seconds its handler ran."""
        waiting = self._ran if grouped else [job]
        assert job.started_at is not None
        context = JobContext(
            job_id=job.pk,
            kind=job.kind,
            tenant=job.tenant,
            payload=job.payload,
            attempt=job.attempts,
            max_attempts=job.max_attempts,
            started_at=job.started_at,
            _heartbeat=lambda: self._renew(waiting, job),
            job=job,
        )
        since = interrupts.arrivals()
        with Isolation(self.db, grouped=grouped, job_id=job.pk) as isolation:
            began = time.perf_counter()
            try:
                returned = handler(context)
                ran_seconds = time.perf_counter() - began
                returned = return_value_stored(returned)
            except BaseException as exc:  # A handler may raise anything: the job records it and is retried.
                if interrupts.is_signal(exc, since=since):
                    raise
                return isolation.judge(exc), None, 0.0
            return isolation.judge(None), returned, ran_seconds

    def _renew(self, jobs: list[BackgroundJob], job: BackgroundJob) -> bool:
        """A heartbeat: renew the leases of `jobs` (a group's, waiting for its commit); return whether `job` holds."""
        now = self.clock()
        if self.lease.separate:
            return job.pk in self.lease.renew_all(jobs, now=now, beat=True)
        held = [each.pk for each in jobs if self.lease.renew(each, now=now)]
        return job.pk in held

    def _commit(self) -> None:
        self._opened, self._asked, self._held = None, set(), set()
        if self._atomic is None:
            return
        # Every start of the group answered, and matched its claim; every mark matches too.
        if self.lease.settle() or mark_succeeded(self._successes) != len(self._successes):
            self._run_again(self._abandon(_MarksLost()), why="a lease was lost while the group ran")
            return
        if self.db.needs_rollback:  # each handler's state was judged: only a fault of this machinery gets here
            raise TransactionManagementError("the group's transaction was marked for rollback")
        atomic, ran, successes, failures = self._atomic, self._ran, self._successes, self._failures
        self._atomic, self._ran, self._successes, self._failures = None, [], [], []
        if successes:  # one callback for the group's successes: gone with the group if it rolls back
            after_commit(partial(attempts_succeeded, successes))
        try:
            atomic.__exit__(None, None, None)
        except DatabaseError as exc:  # the COMMIT refused (a deferred constraint): the Atomic rolled the group back
            if _lost(self._raw) or not _still_connected():
                raise  # the connection is gone (a restart): the worker reconnects and takes its jobs back
            self._run_again(ran, why="its COMMIT failed", failure=exc)
            return
        for _ in successes:
            self.count("succeeded")
        for outcome in failures:
            self.count(outcome)

    def _recovered(self, error: BaseException, *, current: BackgroundJob | None = None) -> bool:
        """Roll the open group back after `error` in its work; return False when `error` must be raised on.

        A signal, a lost connection and a deployment error are raised on. Otherwise the group's jobs
        (and `current`, the job being run) run again one per transaction: a handler
        that left the group beyond its savepoint's reach fails alone, with its error.
        """
        raw = self.db.connection  # the group's: Django's Atomic replaces a lost one on its way out of the rollback
        ran = self._abandon(error)
        if _fatal(error, raw):
            return False
        if current is not None and all(job is not current for job in ran):
            ran.append(current)
        if isinstance(error, GroupLost):
            self._run_again(ran, why="a handler left it unusable", failure=error.failure, culprit=current)
        else:
            logger.exception("group commit: unexpected error", extra={"action": "job_run", "error": one_line(error)})
            self._run_again(ran, why="an unexpected error", failure=error)
        return True

    def _abandon(self, error: BaseException) -> list[BackgroundJob]:
        """Roll the open group back (its writes, marks and failure records gone); return the jobs it had started."""
        ran, atomic = self._ran, self._atomic
        self._atomic, self._ran, self._successes, self._failures = None, [], [], []
        self._opened, self._asked, self._held = None, set(), set()
        if self.lease.separate:
            with suppress(DatabaseError):  # on error the lease connection is closed, to be opened anew
                self.lease.settle()  # the answers of the starts sent: the jobs run again are started anew
        if atomic is None:
            return ran
        if self.db.connection is not self._raw:  # a handler replaced the connection: Django's state is the new one's
            if self._raw is not None:
                self._raw.close()  # the server rolls the group back
            if self.nested:
                raise TransactionManagementError("a job's handler replaced the connection of the caller's transaction")
            return ran
        del self.db.atomic_blocks[self._blocks :]  # blocks a handler left open
        del self.db.savepoint_ids[self._saved :]
        closed = self.db.closed_in_transaction
        atomic.__exit__(type(error), error, error.__traceback__)
        if closed and self.nested:
            raise TransactionManagementError("a job's handler closed the connection of the caller's transaction")
        return ran

    def _run_again(
        self,
        ran: list[BackgroundJob],
        *,
        why: str,
        failure: BaseException | None = None,
        culprit: BackgroundJob | None = None,
    ) -> None:
        """Run the jobs of a rolled-back group again, one per transaction, so that a failure falls on its own job.

        `failure` is `culprit`'s (recorded, not run again) or, without one, the
        group's (a refused COMMIT, an unexpected error): a group of one records it as
        its job's. Without either, the group's marks did not all match: a group of
        one lost its lease.
        """
        if culprit is not None:
            assert failure is not None
            self._fail_alone(culprit, failure)
            ran = [job for job in ran if job is not culprit]
        elif len(ran) == 1 and (failure is not None or self.max_jobs == 1):
            if failure is None:
                self._lease_lost(ran[0], "job lease lost")
            else:
                self._fail_alone(ran[0], failure)
            return
        if not ran:
            return
        logger.warning(
            f"group commit: {why}; running its jobs again one at a time",
            extra={
                "action": "job_run",
                "jobIds": [job.pk for job in ran],
                **({} if failure is None else {"error": one_line(failure)}),
                **self.origin.log_fields(),
            },
        )
        grouped, self.max_jobs = self.max_jobs, 1
        try:
            for index, job in enumerate(ran):
                if self.stop.is_set() or (index and time.monotonic() >= self.deadline):
                    self._give_back(ran[index:])
                    return
                self.run(job)
        finally:
            self.max_jobs = grouped

    def _fail_alone(self, job: BackgroundJob, failure: BaseException) -> None:
        """Record `job`'s failure in a transaction of its own (at worst, leave the job to lease recovery)."""
        try:
            self.count(record_failure(job, exc=failure, now=self.clock(), origin=self.origin))
        except Exception as exc:
            if _fatal(exc):
                raise
            logger.exception(
                "job failure not recorded: the job comes back once its lease expires",
                extra={"action": "job_run", "jobId": job.pk, "error": one_line(exc), **self.origin.log_fields()},
            )

    def _give_back(self, jobs: list[BackgroundJob]) -> None:
        given = give_back_undone(jobs)
        reason = "the worker is stopping" if self.stop.is_set() else "the budget is spent"
        logger.info(
            "jobs of a rolled-back group given back, not run again",
            extra={"action": "jobs_run", "released": given, "reason": reason, **self.origin.log_fields()},
        )

    def _lease_lost(self, job: BackgroundJob, message: str) -> None:
        logger.warning(
            message, extra={"action": "job_run", "jobId": job.pk, "attempt": job.attempts, **self.origin.log_fields()}
        )
        self.count("lease_lost")


def _resolved(kind: str) -> Handler:
    """Return what runs jobs of `kind`: its handler, or one that raises why there is none (the job's failure)."""
    try:
        handler = resolve_handler(kind)
    except Exception as exc:  # importing a task's module failed
        error = exc

        def unloadable(context: JobContext) -> Any:
            raise error

        return unloadable
    if handler is None:

        def missing(context: JobContext) -> Any:
            raise LookupError(f"no handler for kind {kind!r}; is its module in JOB_HANDLER_MODULES?")

        return missing
    return handler


def _fatal(error: BaseException, raw: Any = None) -> bool:
    """Return whether `error` must end the drain: a signal, a lost connection, a deployment without what it needs.

    The connection is lost when `raw` (psycopg's connection the error came on) was
    lost to the server, or when the thread's connection does not answer now.
    """
    if not isinstance(error, Exception) or isinstance(error, ImproperlyConfigured):
        return True
    return isinstance(error, CONNECTION_ERRORS) and (_lost(raw) or not _still_connected())


def _lost(raw: Any) -> bool:
    """Return whether psycopg's connection `raw` was lost to the server (its own flag, set as it found out)."""
    return bool(getattr(raw, "broken", False))


def _still_connected() -> bool:
    """Return whether the thread's connection still answers (a refused COMMIT leaves it usable, a lost one not)."""
    return connection.connection is not None and connection.is_usable()
