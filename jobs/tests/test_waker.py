"""An idle `run_jobs --loop` worker: woken by NOTIFY when a job becomes pending, by polling when none comes.

Each test reads the worker's output (its drain summaries and its `worker woke` debug
lines) to know what happened; none waits for time to pass or measures it. Where a
notification must wake the worker, its poll comes a minute later: a worker that missed
the notification still ends the test, which then fails on the reason it woke.
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from jobs.models import BackgroundJob
from jobs.services import job_enqueue
from jobs.waker import Waker
from testsupport import procs
from testsupport.models import HandlerRun

pytestmark = pytest.mark.django_db(transaction=True)

Reap = Callable[[subprocess.Popen[str]], subprocess.Popen[str]]


def idle_worker(reap: Reap, *, poll_seconds: str, **env: str) -> subprocess.Popen[str]:
    """Start `run_jobs --loop` with debug logs (merged into stdout) and return once it waits, idle and listening.

    Its stdin is open, for test.gate.
    """
    env = procs.child_env(LOG_LEVEL="DEBUG", JOBS_POLL_SECONDS=poll_seconds, **env)
    process = reap(procs.manage("run_jobs", "--loop", env=env, stdin=subprocess.PIPE, stderr=subprocess.STDOUT))
    read_until_idle(process)
    return process


def read_until_idle(process: subprocess.Popen[str]) -> None:
    """Read the worker's output until it says it is waiting for work (`worker idle`)."""
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("{") and json.loads(line).get("action") == "worker_wait":
            return
    raise AssertionError("the worker exited before it waited for work")


def read_until_succeeded(process: subprocess.Popen[str], jobs: int) -> tuple[dict[str, Any], list[str]]:
    """Read until a drain summary counts `jobs` succeeded; return it and the wake reasons logged before it."""
    assert process.stdout is not None
    wakes: list[str] = []
    for line in process.stdout:
        if not line.startswith("{"):
            continue
        printed = json.loads(line)
        if printed.get("action") == "worker_wake":
            wakes.append(printed["reason"])
        elif "claimed" in printed and "level" not in printed and printed["succeeded"] >= jobs:
            return printed, wakes
    raise AssertionError(f"the worker exited before {jobs} jobs succeeded")


def stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    _, errors = process.communicate(timeout=60)
    assert process.returncode == 0, errors


def test_run_jobs__an_idle_worker_starts_a_job_as_its_enqueue_commits_without_polling(reap: Reap) -> None:
    worker = idle_worker(reap, poll_seconds="60")  # a poll would come a minute later

    job = job_enqueue(kind="test.record", now=timezone.now()).job
    summary, wakes = read_until_succeeded(worker, 1)

    assert summary["succeeded"] == 1
    assert wakes == ["notified"]
    stop(worker)
    assert list(HandlerRun.objects.values_list("job_id", flat=True)) == [job.pk]


def test_run_jobs__a_delayed_job_wakes_the_worker_when_it_is_due(reap: Reap) -> None:
    worker = idle_worker(reap, poll_seconds="60")

    job = job_enqueue(kind="test.record", now=timezone.now(), run_after=timezone.now() + timedelta(seconds=1)).job
    summary, wakes = read_until_succeeded(worker, 1)

    # Notified at the enqueue, the worker found nothing due yet, and woke again at the job's run_after.
    assert (summary["succeeded"], wakes) == (1, ["notified", "due"])
    stop(worker)
    assert list(HandlerRun.objects.values_list("job_id", flat=True)) == [job.pk]


def test_run_jobs__a_job_whose_notification_was_lost_is_found_by_the_poll(reap: Reap) -> None:
    worker = idle_worker(reap, poll_seconds="0.2")
    now = timezone.now()

    # A job written with triggers off for this session: no NOTIFY, as if the notification were lost.
    with connection.cursor() as cursor:
        cursor.execute("SET session_replication_role = replica")
    try:
        job = BackgroundJob.objects.create(kind="test.record", run_after=now, created_at=now)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET session_replication_role")
    summary, wakes = read_until_succeeded(worker, 1)

    assert summary["succeeded"] == 1
    assert wakes and set(wakes) == {"poll"}
    stop(worker)
    assert list(HandlerRun.objects.values_list("job_id", flat=True)) == [job.pk]


def test_run_jobs__a_busy_worker_reads_the_notifications_of_the_jobs_it_ran_and_is_not_woken_by_them_later(
    reap: Reap,
) -> None:
    worker = idle_worker(reap, poll_seconds="60")
    assert worker.stdout is not None and worker.stdin is not None
    gate = job_enqueue(kind="test.gate", now=timezone.now()).job
    procs.read_until(worker.stdout, f"STARTED job={gate.pk} ")  # busy: the handler waits for a line on stdin

    # Enqueued while the worker is busy: each notifies it; the drain under way runs the jobs due.
    busy = [job_enqueue(kind="test.record", now=timezone.now()).job for _ in range(3)]
    delayed = job_enqueue(kind="test.record", now=timezone.now(), run_after=timezone.now() + timedelta(seconds=1)).job
    worker.stdin.write("go\n")
    worker.stdin.flush()
    summary, _ = read_until_succeeded(worker, 4)
    assert summary["succeeded"] == 4  # the gate and the three: the delayed job is not due yet
    summary, wakes = read_until_succeeded(worker, 1)

    # The notifications that came while it was busy were read before its next drain: no wake for them
    # once idle (it would find nothing to run), only the delayed job's run_after.
    assert (summary["succeeded"], wakes) == (1, ["due"])
    stop(worker)
    ran = [gate.pk, *(job.pk for job in busy), delayed.pk]
    assert sorted(HandlerRun.objects.values_list("job_id", flat=True)) == sorted(ran)


def test_run_jobs__a_worker_listens_again_after_its_database_connections_were_terminated(reap: Reap) -> None:
    name = procs.app_name()  # the worker's connections, the listening one included, carry it
    worker = idle_worker(reap, poll_seconds="60", PGAPPNAME=name)

    # What a database restart does to the worker's sessions; it reconnects and drains (nothing), then waits.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = %s", [name]
        )
    assert worker.stdout is not None
    for line in worker.stdout:
        if line.startswith("{") and json.loads(line).get("action") == "worker_reconnect":
            break
    read_until_idle(worker)  # reconnected, drained (nothing), listening again
    job = job_enqueue(kind="test.record", now=timezone.now()).job
    summary, wakes = read_until_succeeded(worker, 1)

    assert (summary["succeeded"], wakes[-1]) == (1, "notified")  # woken by the new LISTEN, not a poll
    stop(worker)
    assert list(HandlerRun.objects.values_list("job_id", flat=True)) == [job.pk]


def test_waker__wakes_when_the_workers_chore_is_due(settings: Any) -> None:
    settings.JOBS_POLL_SECONDS = 60

    woke = Waker(queue=None).wait(stop=threading.Event(), now=timezone.now(), chores_in=0.05)

    assert woke == "chores"
