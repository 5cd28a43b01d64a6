"""Job handlers for tests: each records its completed run in HandlerRun."""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import time
from typing import Any

from django.db import transaction

from jobs.context import JobContext
from jobs.models import BackgroundJob
from jobs.registry import autocommit, job_handler
from testsupport.models import HandlerNote, HandlerRun

# What test.steps' commit callbacks saw, in the order they ran: (job id, the job's status then).
committed_callbacks: list[tuple[int, str]] = []


def _record(ctx: JobContext) -> None:
    HandlerRun.objects.create(job_id=ctx.job_id, attempt=ctx.attempt, worker_pid=os.getpid())


@job_handler("test.record")
def record(ctx: JobContext) -> None:
    """Record the run; with `failUntil` in the payload, fail attempts up to that number first."""
    fail_until = _get(ctx.payload, "failUntil", 0)
    if ctx.attempt <= fail_until:
        raise ValueError(f"test.record fails attempt {ctx.attempt}")
    _record(ctx)


@job_handler("test.fail")
def fail(ctx: JobContext) -> None:
    """Always fail."""
    raise ValueError(f"test.fail failed attempt {ctx.attempt}")


@job_handler("test.write_then_fail")
def write_then_fail(ctx: JobContext) -> None:
    """Record the run, then fail attempts up to `failUntil` (default: every attempt): the record must roll back."""
    _record(ctx)
    if ctx.attempt <= _get(ctx.payload, "failUntil", ctx.max_attempts):
        raise ValueError(f"test.write_then_fail fails attempt {ctx.attempt} after writing")


@job_handler("test.dangling_reference")
def dangling_reference(ctx: JobContext) -> None:
    """Record the run, then note a run that does not exist: the handler returns, and the COMMIT refuses the note.

    Django's foreign keys on PostgreSQL are DEFERRABLE INITIALLY DEFERRED: the
    violation is found only when the transaction commits.
    """
    _record(ctx)
    HandlerNote.objects.create(run_id=-ctx.job_id)


@job_handler("test.steps")
def steps(ctx: JobContext) -> None:
    """Do the payload's `steps` in order: "on_commit" registers a callback, "write" records the run, "fail" raises.

    The callback notes, in committed_callbacks, the job and its status as committed when it runs.
    """

    def committed() -> None:
        committed_callbacks.append((ctx.job_id, BackgroundJob.objects.get(pk=ctx.job_id).status))

    for step in _get(ctx.payload, "steps", []):
        if step == "on_commit":
            transaction.on_commit(committed)
        elif step == "write":
            _record(ctx)
        elif step == "fail":
            raise ValueError(f"test.steps fails attempt {ctx.attempt}")


@job_handler("test.autocommit_write_then_fail")
@autocommit
def autocommit_write_then_fail(ctx: JobContext) -> None:
    """Record the run in autocommit (committed at once), then fail: the record stays."""
    _record(ctx)
    raise ValueError(f"test.autocommit_write_then_fail fails attempt {ctx.attempt} after writing")


@job_handler("test.returns")
def returns(ctx: JobContext) -> Any:
    """Return the payload's `value` (None without one): what the job row keeps."""
    return _get(ctx.payload, "value", None)


@job_handler("test.remove_dir")
def remove_dir(ctx: JobContext) -> None:
    """Remove the payload's `path` and all it holds, as a temporary-files cleaner would while the worker runs."""
    shutil.rmtree(_get(ctx.payload, "path", ""))
    _record(ctx)


@job_handler("test.heartbeat")
def heartbeat(ctx: JobContext) -> None:
    """Extend the lease once, and record the run only if the lease was still ours."""
    if not ctx.heartbeat():
        raise RuntimeError("heartbeat refused: the lease was lost")
    _record(ctx)


@job_handler("test.block")
def block(ctx: JobContext) -> None:
    """Announce the start on stdout, then work for `seconds` so that a test can kill the worker."""
    _record(ctx)  # Rolled back if the worker dies before the job commits.
    sys.stdout.write(f"STARTED job={ctx.job_id} attempt={ctx.attempt}\n")
    sys.stdout.flush()
    time.sleep(_get(ctx.payload, "seconds", 3600))


@job_handler("test.gate")
def gate(ctx: JobContext) -> None:
    """Announce the start, then wait for a line on stdin before each of `beats` heartbeats and before finishing.

    A test drives it a line at a time and looks at the job's row in between. The
    run is recorded at the end, in the job's transaction.
    """
    _say(f"STARTED job={ctx.job_id} attempt={ctx.attempt}")
    for _ in range(_get(ctx.payload, "beats", 0)):
        sys.stdin.readline()
        _say(f"HEARTBEAT job={ctx.job_id} ok={ctx.heartbeat()}")
    sys.stdin.readline()
    _record(ctx)


@job_handler("test.crunch")
def crunch(ctx: JobContext) -> None:
    """Announce the start on stdout, hash for `rounds` rounds, fail attempts up to `failUntil`, then record."""
    sys.stdout.write(f"STARTED job={ctx.job_id} attempt={ctx.attempt}\n")
    sys.stdout.flush()
    digest = str(ctx.job_id).encode()
    for _ in range(_get(ctx.payload, "rounds", 0)):
        digest = hashlib.sha256(digest).digest()
    if ctx.attempt <= _get(ctx.payload, "failUntil", 0):
        raise ValueError(f"test.crunch fails attempt {ctx.attempt}")
    _record(ctx)


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _get(payload: Any, key: str, default: Any) -> Any:
    return payload.get(key, default) if isinstance(payload, dict) else default
