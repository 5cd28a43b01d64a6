"""Job handlers that misbehave as applications' handlers do: each records its run (a HandlerRun), then misbehaves.

Their neighbours in a group must never see the difference (docs/jobs.md, "What a
handler may do"): `enqueue_between_neighbours` puts each between two well-behaved
jobs, and `assert_each_outcome_is_its_own` checks, after a drain, that the
neighbours succeeded once with one committed write each and that each misbehaving
job ended as `EXPECTED` says.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from datetime import datetime
from typing import Any

from django.contrib.auth.models import Group
from django.db import DatabaseError, IntegrityError, close_old_connections, connection, transaction

from jobs.context import JobContext
from jobs.models import BackgroundJob
from jobs.registry import job_handler
from runs.models import DeadLetter
from testsupport.models import HandlerRun


def _record(ctx: JobContext) -> HandlerRun:
    return HandlerRun.objects.create(job_id=ctx.job_id, attempt=ctx.attempt, worker_pid=os.getpid())


def _duplicate(run: HandlerRun) -> None:
    HandlerRun.objects.create(pk=run.pk, job_id=run.job_id, attempt=run.attempt, worker_pid=run.worker_pid)


@job_handler("unruly.data_error")
def data_error(ctx: JobContext) -> None:
    """Let an ORM DataError propagate: a group name longer than its column."""
    _record(ctx)
    Group.objects.create(name="x" * 400)


@job_handler("unruly.integrity_error")
def integrity_error(ctx: JobContext) -> None:
    """Let an ORM IntegrityError propagate."""
    _duplicate(_record(ctx))


@job_handler("unruly.swallowed_integrity_error")
def swallowed_integrity_error(ctx: JobContext) -> None:
    """Insert or ignore as under autocommit: catch the IntegrityError outside a transaction.atomic() of its own."""
    run = _record(ctx)
    try:  # noqa: SIM105 (the idiom as applications write it)
        _duplicate(run)
    except IntegrityError:
        pass


@job_handler("unruly.swallowed_raw_error")
def swallowed_raw_error(ctx: JobContext) -> None:
    """Catch failing raw statements (Django's cursor) and return: PostgreSQL's transaction is aborted underneath."""
    _record(ctx)
    with connection.cursor() as cursor:
        for statement in ("SELECT 1 / 0", "SELECT 1"):  # the second is refused: the transaction is aborted
            try:  # noqa: SIM105 (as applications write it)
                cursor.execute(statement)
            except DatabaseError:
                pass


@job_handler("unruly.set_rollback")
def set_rollback(ctx: JobContext) -> None:
    """Mark the transaction for rollback and return."""
    _record(ctx)
    transaction.set_rollback(True)


@job_handler("unruly.no_savepoint_caught")
def no_savepoint_caught(ctx: JobContext) -> None:
    """Catch an exception raised out of an atomic(savepoint=False) block: Django marks the transaction for rollback."""
    _record(ctx)
    try:
        with transaction.atomic(savepoint=False):
            raise ValueError("unruly.no_savepoint_caught raised in its block")
    except ValueError:
        pass


@job_handler("unruly.insert_or_ignore")
def insert_or_ignore(ctx: JobContext) -> None:
    """Insert or ignore the right way: the statement that may fail in a transaction.atomic() of its own."""
    run = _record(ctx)
    try:
        with transaction.atomic():
            _duplicate(run)
    except IntegrityError:
        pass


@job_handler("unruly.raise_in_atomic")
def raise_in_atomic(ctx: JobContext) -> None:
    """Raise inside a nested transaction.atomic() block."""
    with transaction.atomic():
        _record(ctx)
        with transaction.atomic():
            _record(ctx)
            raise ValueError("unruly.raise_in_atomic raised inside its atomic blocks")


@job_handler("unruly.atomic_left_open")
def atomic_left_open(ctx: JobContext) -> None:
    """Enter a transaction.atomic() block and never leave it."""
    transaction.atomic().__enter__()
    _record(ctx)


@job_handler("unruly.on_commit_fails")
def on_commit_fails(ctx: JobContext) -> None:
    """Succeed, with a commit callback that raises once the job's writes are committed."""
    _record(ctx)
    transaction.on_commit(lambda: 1 / 0)


@job_handler("unruly.close_connection")
def close_connection(ctx: JobContext) -> None:
    """Close the connection (its transaction with it) and return."""
    _record(ctx)
    connection.close()


@job_handler("unruly.close_old_connections")
def close_old(ctx: JobContext) -> None:
    """Call close_old_connections(), as Django advises long-running code to, then go on writing."""
    _record(ctx)
    close_old_connections()
    _record(ctx)


@job_handler("unruly.reopen_connection")
def reopen_connection(ctx: JobContext) -> None:
    """Close the connection and open a new one."""
    _record(ctx)
    connection.close()
    connection.connect()


@job_handler("unruly.raw_statement_fails")
def raw_statement_fails(ctx: JobContext) -> None:
    """Run a failing statement on psycopg's own connection, around Django (and its savepoint): it aborts the group."""
    connection.ensure_connection()
    connection.connection.execute("SELECT 1 / 0")


@job_handler("unruly.rollback_statement")
def rollback_statement(ctx: JobContext) -> None:
    """Send ROLLBACK through Django's cursor and return: the group's transaction ends, its savepoints with it."""
    _record(ctx)
    with connection.cursor() as cursor:
        cursor.execute("ROLLBACK")


@job_handler("unruly.set_local_search_path")
def set_local_search_path(ctx: JobContext) -> None:
    """Leave a SET LOCAL behind that every later statement of the group trips on (its tables are no longer found)."""
    _record(ctx)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL search_path TO pg_catalog")


@job_handler("unruly.durable")
def durable(ctx: JobContext) -> None:
    """Write in a durable atomic block (refused inside another transaction)."""
    with transaction.atomic(durable=True):
        _record(ctx)


@job_handler("unruly.system_exit")
def system_exit(ctx: JobContext) -> None:
    """Exit, as argparse or click inside a handler would."""
    _record(ctx)
    sys.exit(3)


@job_handler("unruly.keyboard_interrupt")
def keyboard_interrupt(ctx: JobContext) -> None:
    """Raise KeyboardInterrupt itself (no signal)."""
    _record(ctx)
    raise KeyboardInterrupt


class Unprintable(Exception):
    """An exception whose message cannot be made."""

    def __str__(self) -> str:
        raise RuntimeError("no message")


@job_handler("unruly.unprintable")
def unprintable(ctx: JobContext) -> None:
    """Raise an exception that str() cannot print."""
    _record(ctx)
    raise Unprintable


# kind -> (the job's status after one attempt of two, its error's class path, the start of its last_error,
# the runs it committed): the bad job's outcome is its own.
UNUSABLE = "jobs.exceptions.HandlerTransactionError"
EXPECTED: dict[str, tuple[str, str, str, int]] = {
    "unruly.data_error": (
        "pending",
        "django.db.utils.DataError",
        "DataError: value too long for type character varying(150)",
        0,
    ),
    "unruly.integrity_error": (
        "pending",
        "django.db.utils.IntegrityError",
        "IntegrityError: duplicate key value violates unique constraint",
        0,
    ),
    "unruly.swallowed_integrity_error": (
        "pending",
        UNUSABLE,
        "HandlerTransactionError: the handler caught IntegrityError: duplicate key value",
        0,
    ),
    "unruly.swallowed_raw_error": (
        "pending",
        UNUSABLE,
        "HandlerTransactionError: the handler caught DataError: division by zero",
        0,
    ),
    "unruly.set_rollback": ("pending", UNUSABLE, "HandlerTransactionError: the handler marked its transaction", 0),
    "unruly.no_savepoint_caught": (
        "pending",
        UNUSABLE,
        "HandlerTransactionError: the handler marked its transaction for rollback (transaction.set_rollback(True), "
        "or an exception out of a transaction.atomic(savepoint=False) block)",
        0,
    ),
    "unruly.insert_or_ignore": ("succeeded", "", "", 1),
    "unruly.raise_in_atomic": (
        "pending",
        "builtins.ValueError",
        "ValueError: unruly.raise_in_atomic raised inside its atomic blocks",
        0,
    ),
    "unruly.atomic_left_open": (
        "pending",
        UNUSABLE,
        "HandlerTransactionError: the handler left 1 transaction.atomic() block open",
        0,
    ),
    "unruly.on_commit_fails": ("succeeded", "", "", 1),
    "unruly.close_connection": (
        "pending",
        UNUSABLE,
        "HandlerTransactionError: the handler closed the database connection",
        0,
    ),
    "unruly.close_old_connections": (
        "pending",
        UNUSABLE,
        "HandlerTransactionError: the handler closed the database connection",
        0,
    ),
    "unruly.reopen_connection": (
        "pending",
        UNUSABLE,
        "HandlerTransactionError: the handler closed the database connection",
        0,
    ),
    "unruly.raw_statement_fails": ("pending", "psycopg.errors.DivisionByZero", "DivisionByZero: division by zero", 0),
    "unruly.rollback_statement": (
        "pending",
        UNUSABLE,
        "HandlerTransactionError: the handler ended its group's transaction",
        0,
    ),
    # The group's own statements fail after it: its machinery meets the unexpected, and runs each job alone.
    "unruly.set_local_search_path": (
        "pending",
        "django.db.utils.ProgrammingError",
        'ProgrammingError: relation "jobs_backgroundjob" does not exist',
        0,
    ),
    "unruly.durable": (
        "pending",
        "builtins.RuntimeError",
        "RuntimeError: A durable atomic block cannot be nested within another atomic block.",
        0,
    ),
    "unruly.system_exit": ("pending", "builtins.SystemExit", "SystemExit: 3", 0),
    "unruly.keyboard_interrupt": ("pending", "builtins.KeyboardInterrupt", "KeyboardInterrupt", 0),
    "unruly.unprintable": ("pending", "testsupport.unruly.Unprintable", "Unprintable", 0),
    # A task that exits as argparse or click inside it would: sys.exit(0).
    "testsupport.tasks.exits": ("pending", "builtins.SystemExit", "SystemExit: 0", 0),
}


def enqueue_between_neighbours(now: datetime, kinds: list[str]) -> tuple[list[BackgroundJob], dict[str, BackgroundJob]]:
    """Enqueue each kind between two well-behaved jobs, in that order; return the neighbours and the bad jobs.

    A neighbour has one attempt (an attempt spent on it again would bury it); a bad job two.
    """
    neighbours: list[BackgroundJob] = []
    bad: dict[str, BackgroundJob] = {}
    priority = 100
    for kind in kinds:
        neighbours.append(job_at(now, "test.record", priority, max_attempts=1))
        payload: dict[str, Any] = {"args": [], "kwargs": {}} if kind.startswith("testsupport.tasks.") else {}
        bad[kind] = job_at(now, kind, priority - 1, max_attempts=2, payload=payload)
        neighbours.append(job_at(now, "test.record", priority - 2, max_attempts=1))
        priority -= 3
    return neighbours, bad


def job_at(now: datetime, kind: str, priority: int, **fields: Any) -> BackgroundJob:
    """Create a pending job of `kind`, due at `now`."""
    return BackgroundJob.objects.create(kind=kind, priority=priority, run_after=now, created_at=now, **fields)


def succeeding(kinds: list[str]) -> int:
    """Return how many of `kinds` succeed."""
    return sum(1 for kind in kinds if EXPECTED[kind][0] == "succeeded")


def assert_each_outcome_is_its_own(neighbours: list[BackgroundJob], bad: dict[str, BackgroundJob]) -> None:
    """Check that every neighbour succeeded once with one write, and every bad job ended as EXPECTED (one attempt)."""
    writes = Counter(HandlerRun.objects.values_list("job_id", flat=True))
    for job in [*neighbours, *bad.values()]:
        job.refresh_from_db()
    assert [(job.status, job.attempts, writes[job.pk], job.errors) for job in neighbours] == [
        ("succeeded", 1, 1, [])
    ] * len(neighbours)
    seen = {
        kind: (
            job.status,
            job.attempts,
            [error["exception_class_path"] for error in job.errors],
            job.last_error[: len(EXPECTED[kind][2])],
            writes[job.pk],
        )
        for kind, job in bad.items()
    }
    assert seen == {
        kind: (status, 1, [error_class] if error_class else [], error_start, runs)
        for kind, (status, error_class, error_start, runs) in EXPECTED.items()
        if kind in bad
    }
    assert not DeadLetter.objects.exists()
