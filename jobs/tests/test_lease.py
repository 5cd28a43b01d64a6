"""A claimed job's lease, seen from outside the worker: renewed where others see it, never run on once lost.

Real runner processes (testsupport.drainer) hold the leases; the test looks at the
rows from its own connection while a `test.gate` handler waits for its next line.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import pytest
from django.db import connection

from jobs.maintenance import recover_expired_leases
from jobs.models import BackgroundJob
from jobs.triage import job_cancel
from testsupport import drainer, procs
from testsupport.models import HandlerRun

pytestmark = pytest.mark.django_db(transaction=True)

Reap = Callable[[subprocess.Popen[str]], subprocess.Popen[str]]


def gate_job(now: datetime, *, beats: int = 0, priority: int = 0) -> BackgroundJob:
    return BackgroundJob.objects.create(
        kind="test.gate", payload={"beats": beats}, priority=priority, run_after=now, created_at=now
    )


def say(runner: subprocess.Popen[str], line: str) -> None:
    assert runner.stdin is not None
    runner.stdin.write(line + "\n")
    runner.stdin.flush()


def wait_for(runner: subprocess.Popen[str], marker: str) -> str:
    assert runner.stdout is not None
    return procs.read_until(runner.stdout, marker)


@contextmanager
def lock_wait_refused() -> Iterator[None]:
    """Make this connection's statements fail instead of waiting for a row lock (a hang becomes an error)."""
    with connection.cursor() as cursor:
        cursor.execute("SET lock_timeout = '10s'")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET lock_timeout")


def test_jobs_run__a_job_recovered_and_claimed_again_is_never_started_by_its_first_worker(
    now: datetime, reap: Reap
) -> None:
    first = gate_job(now, beats=1, priority=10)
    second = gate_job(now)
    worker_a = reap(drainer.start(at=now))
    assert wait_for(worker_a, "STARTED").startswith(f"STARTED job={first.pk} ")
    say(worker_a, "beat")
    assert wait_for(worker_a, "HEARTBEAT").strip() == f"HEARTBEAT job={first.pk} ok=True"

    # Worker A is busy with `first` (it heartbeats) while the lease of `second`, claimed in the
    # same batch, expires: maintenance gives `second` back and worker B claims and starts it.
    second.refresh_from_db()
    assert second.status == "running" and f":{worker_a.pid}:" in second.locked_by
    assert second.lease_expires_at is not None
    recover_at = second.lease_expires_at + timedelta(microseconds=1)
    recover_expired_leases(now=recover_at)
    assert BackgroundJob.objects.get(pk=second.pk).status == "pending"
    assert BackgroundJob.objects.get(pk=first.pk).status == "running"
    worker_b = reap(drainer.start(at=recover_at))
    assert wait_for(worker_b, "STARTED").startswith(f"STARTED job={second.pk} ")

    # Worker A finishes `first` and comes to `second`, which is worker B's now.
    output_a, _ = worker_a.communicate("go\n", timeout=60)
    output_b, _ = worker_b.communicate("go\n", timeout=60)

    assert (worker_a.returncode, worker_b.returncode) == (0, 0), (output_a, output_b)
    assert f"STARTED job={second.pk} " not in output_a  # its handler never started twice
    summary_a = drainer.summary_of(output_a)
    assert (summary_a["claimed"], summary_a["succeeded"], summary_a["leaseLost"]) == (2, 1, 1)
    assert sorted(HandlerRun.objects.values_list("job_id", "worker_pid")) == [
        (first.pk, worker_a.pid),
        (second.pk, worker_b.pid),
    ]
    assert set(BackgroundJob.objects.values_list("status", flat=True)) == {"succeeded"}


def test_heartbeat__is_seen_by_others_at_once_and_admin_actions_do_not_wait_for_the_handler(
    now: datetime, reap: Reap
) -> None:
    job = gate_job(now, beats=1)
    waiting = BackgroundJob.objects.create(kind="test.record", run_after=now + timedelta(hours=1), created_at=now)
    worker = reap(drainer.start(at=now))
    wait_for(worker, "STARTED")
    job.refresh_from_db()
    lease_before = job.lease_expires_at
    assert lease_before is not None

    say(worker, "beat")
    wait_for(worker, "HEARTBEAT")

    # The handler has not committed (it waits for its last line), yet its renewal is visible,
    job.refresh_from_db()
    assert job.lease_expires_at is not None and job.lease_expires_at > lease_before
    # and an operator's action on a selection that includes the running job answers at once.
    with lock_wait_refused():
        report = job_cancel(job_ids=[job.pk, waiting.pk], by="ops", now=now)
    assert (report.done, dict(report.skipped)) == ([waiting.pk], {"not pending (running)": [job.pk]})

    output, _ = worker.communicate("go\n", timeout=60)
    assert worker.returncode == 0, output
    job.refresh_from_db()
    assert (job.status, job.attempts) == ("succeeded", 1)
    assert BackgroundJob.objects.get(pk=waiting.pk).status == "cancelled"
