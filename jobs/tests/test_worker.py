"""`run_jobs` as a standing worker process: stopped by a real signal, it loses no attempt and exits 0."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection

from jobs.maintenance import recover_expired_leases
from jobs.models import BackgroundJob
from runs.models import DeadLetter
from testsupport import procs
from testsupport.models import HandlerRun
from testsupport.tcp_proxy import TcpProxy

pytestmark = pytest.mark.django_db(transaction=True)

Reap = Callable[[subprocess.Popen[str]], subprocess.Popen[str]]


def worker(reap: Reap, *args: str, **env: str) -> subprocess.Popen[str]:
    """Start `run_jobs --loop` with INFO logs, stdin open (for test.gate), its logs (stderr) merged into stdout."""
    return reap(
        procs.manage(
            "run_jobs",
            "--loop",
            *args,
            env=procs.child_env(LOG_LEVEL="INFO", **env),
            stdin=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
    )


def read_until_logged(process: subprocess.Popen[str], message: str) -> dict[str, Any]:
    """Read the worker's stdout until a log line with `message` (EOF raises AssertionError)."""
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("{") and json.loads(line).get("message", "").startswith(message):
            return dict(json.loads(line))
    raise AssertionError(f"the worker exited before logging {message!r}")


def read_until_drained(process: subprocess.Popen[str], succeeded: int) -> list[dict[str, Any]]:
    """Read the worker's stdout until its drains' summaries add up to `succeeded` jobs; return the log lines read."""
    assert process.stdout is not None
    logs: list[dict[str, Any]] = []
    for line in process.stdout:
        if not line.startswith("{"):
            continue
        printed = json.loads(line)
        if "level" in printed:
            logs.append(printed)
            continue
        succeeded -= printed["succeeded"]
        if succeeded <= 0:
            return logs
    raise AssertionError(f"the worker exited with {succeeded} jobs still to run")


def logs(output: str) -> list[dict[str, Any]]:
    """Return the log lines the worker wrote (merged into its stdout)."""
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [line for line in lines if "level" in line]


def summaries(output: str) -> list[dict[str, Any]]:
    """Return the drain summaries the worker printed (the JSON lines that are not log lines)."""
    lines = [json.loads(line) for line in output.splitlines() if line.startswith("{")]
    return [line for line in lines if "claimed" in line and "level" not in line]


def queue_of(now: datetime, first: BackgroundJob, waiting: int) -> list[BackgroundJob]:
    """Return `waiting` jobs of one attempt each, due after `first` (claimed in its batch, not started)."""
    return [
        BackgroundJob.objects.create(kind="test.record", max_attempts=1, run_after=now, created_at=now)
        for _ in range(waiting)
    ]


def assert_given_back(jobs: list[BackgroundJob]) -> None:
    for job in jobs:
        job.refresh_from_db()
        assert (job.status, job.attempts, job.lease_expires_at, job.locked_by, job.started_at) == (
            "pending",
            0,
            None,
            "",
            None,
        )


def test_run_jobs__sigterm_lets_the_running_job_finish_and_gives_the_others_back_unspent(
    now: datetime, reap: Reap
) -> None:
    running = BackgroundJob.objects.create(kind="test.gate", priority=10, run_after=now, created_at=now)
    waiting = queue_of(now, running, 3)
    process = worker(reap, "--batch-size", "10")
    assert process.stdout is not None
    procs.read_until(process.stdout, "STARTED")

    process.send_signal(signal.SIGTERM)
    stopping = read_until_logged(process, "worker stopping")
    output, _ = process.communicate("finish\n", timeout=60)  # the handler may finish now

    assert (process.returncode, stopping["signal"]) == (0, "SIGTERM"), output
    assert "Traceback" not in output
    [summary] = summaries(output)
    assert (summary["claimed"], summary["succeeded"]) == (1, 1)
    running.refresh_from_db()
    assert (running.status, running.attempts) == ("succeeded", 1)
    assert list(HandlerRun.objects.values_list("job_id", flat=True)) == [running.pk]
    assert_given_back(waiting)  # one attempt each, none spent: no dead letters
    assert not DeadLetter.objects.exists()


@pytest.mark.parametrize(
    ("args", "signals"),
    [
        ([], [signal.SIGINT, signal.SIGINT]),  # Ctrl-C, and Ctrl-C again: give up at once
        (["--grace", "0"], [signal.SIGTERM]),  # no grace at all
    ],
    ids=["ctrl-c-twice", "sigterm-no-grace"],
)
def test_run_jobs__gives_up_on_a_handler_still_running_after_the_grace(
    now: datetime, reap: Reap, args: list[str], signals: list[signal.Signals]
) -> None:
    stuck = BackgroundJob.objects.create(
        kind="test.block", payload={"seconds": 3600}, priority=10, run_after=now, created_at=now
    )
    waiting = queue_of(now, stuck, 2)
    name = procs.app_name()
    process = worker(reap, "--batch-size", "10", *args, PGAPPNAME=name)
    assert process.stdout is not None
    procs.read_until(process.stdout, "STARTED")

    process.send_signal(signals[0])
    read_until_logged(process, "worker stopping")
    for again in signals[1:]:
        process.send_signal(again)
    output, _ = process.communicate(timeout=60)
    procs.wait_until_disconnected(name)

    assert process.returncode == 0, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output
    assert "worker gave up on its running job" in output
    [summary] = summaries(output)
    assert (summary["claimed"], summary["succeeded"]) == (0, 0)
    assert_given_back(waiting)
    # The stuck job's handler did start: its transaction died with the process, and once its
    # lease expires maintenance returns it with that attempt spent.
    stuck.refresh_from_db()
    assert (stuck.status, stuck.attempts) == ("running", 1)
    assert stuck.started_at is not None and stuck.lease_expires_at is not None
    assert not HandlerRun.objects.exists()
    after_lease = stuck.lease_expires_at + timedelta(seconds=1)
    assert recover_expired_leases(now=after_lease) == {"requeued": 1, "released": 0, "dead": 0}
    stuck.refresh_from_db()
    assert (stuck.status, stuck.attempts) == ("pending", 1)


def test_run_jobs__exits_at_the_end_of_the_grace_even_when_the_database_is_unreachable(
    now: datetime, reap: Reap
) -> None:
    stuck = BackgroundJob.objects.create(
        kind="test.block", payload={"seconds": 3600}, priority=10, run_after=now, created_at=now
    )
    waiting = queue_of(now, stuck, 2)
    name = procs.app_name()
    with TcpProxy(procs.database_address()) as proxy:  # the worker reaches the database through it
        url = procs.database_url(port=proxy.port)
        process = worker(reap, "--batch-size", "10", "--grace", "0", DATABASE_URL=url, PGAPPNAME=name)
        assert process.stdout is not None
        procs.read_until(process.stdout, "STARTED")

        proxy.cut()  # the database goes away for the worker: its sessions end, new ones are refused
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=30)
    procs.wait_until_disconnected(name)

    # It could not give its claims back, and said so; it still printed its summary and ended, with status 1.
    assert process.returncode == 1, output
    assert "Traceback" not in output
    [gave_up] = [log for log in logs(output) if log["message"].startswith("worker gave up")]
    assert (gave_up["level"], gave_up["action"]) == ("ERROR", "worker_stop")
    assert gave_up["message"].endswith("could not be given back: lease recovery returns them once their lease expires")
    assert gave_up["error"].startswith("OperationalError: ")
    [summary] = summaries(output)
    assert (summary["claimed"], summary["succeeded"]) == (0, 0)
    # Its unstarted claims come back once their lease expires (time passed in), their attempt not spent.
    for job in waiting:
        job.refresh_from_db()
        assert (job.status, job.attempts, job.started_at) == ("running", 1, None)
    stuck.refresh_from_db()
    assert stuck.lease_expires_at is not None
    after_lease = stuck.lease_expires_at + timedelta(seconds=1)
    assert recover_expired_leases(now=after_lease) == {"requeued": 1, "released": 2, "dead": 0}
    assert_given_back(waiting)
    assert not DeadLetter.objects.exists()


def test_run_jobs__a_standing_worker_outlives_the_termination_of_its_database_connections(
    now: datetime, reap: Reap
) -> None:
    name = f"run-jobs-{secrets.token_hex(4)}"  # the worker's connections carry it as application_name
    process = worker(reap, PGAPPNAME=name)
    BackgroundJob.objects.create(kind="test.record", run_after=now, created_at=now)
    read_until_drained(process, succeeded=1)

    # What a database restart or a failover does to the worker's sessions.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s", [name]
        )
        [(terminated,)] = cursor.fetchall()
    assert terminated >= 1
    later = [BackgroundJob.objects.create(kind="test.record", run_after=now, created_at=now) for _ in range(2)]

    logs = read_until_drained(process, succeeded=2)

    assert process.poll() is None  # still alive
    [lost] = [log for log in logs if log.get("action") == "worker_reconnect"]
    assert (lost["level"], lost["message"]) == ("WARNING", "database connection lost: reconnecting")
    assert lost["error"].startswith("OperationalError: ")
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    for job in later:
        job.refresh_from_db()
        assert (job.status, job.attempts) == ("succeeded", 1)
    assert HandlerRun.objects.count() == 3


def test_run_jobs__an_idle_worker_stopped_by_sigterm_prints_its_summary(reap: Reap) -> None:
    env = procs.child_env(LOG_LEVEL="DEBUG", JOBS_POLL_SECONDS="60")
    process = reap(procs.manage("run_jobs", "--loop", env=env, stderr=subprocess.STDOUT))
    read_until_logged(process, "worker idle")

    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)

    assert process.returncode == 0, output
    [summary] = summaries(output)
    assert (summary["claimed"], summary["succeeded"], summary["remainingBacklog"]) == (0, 0, 0)
