"""A standing worker whose PostgreSQL crashes and restarts mid-drain: its lost group is run again within seconds.

The server is a throwaway cluster of the test's own (testsupport.pg_cluster), never
the machine's shared one. The worker's lease is an hour long: a job that comes back
before the test's deadline came back through the worker itself, not lease expiry.
"""

from __future__ import annotations

import json
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import IO, Any

import psycopg
import pytest

from testsupport import procs
from testsupport.pg_cluster import Cluster, throwaway_cluster

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

Reap = Callable[[subprocess.Popen[str]], subprocess.Popen[str]]
DEADLINE_SECONDS = 90  # far below the lease: what finishes in time was never waiting for it
LEASE_SECONDS = 3600
MINIMUM_BACKOFF = 0.5  # jobs.backoff.reconnect_delays' first wait


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    with throwaway_cluster() as made:
        yield made


class Output:
    """The worker's output (its logs merged in), read line by line and kept."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream
        self.lines: list[str] = []

    def read_until(self, marker: str) -> None:
        for line in self.stream:
            self.lines.append(line)
            if line.startswith(marker):
                return
        raise AssertionError(f"the worker exited before printing {marker!r}:\n{''.join(self.lines[-40:])}")

    def logs(self, action: str) -> list[dict[str, Any]]:
        printed = [json.loads(line) for line in self.lines if line.startswith("{")]
        return [line for line in printed if line.get("action") == action]


def enqueue(db: psycopg.Connection[Any], kind: str, *, priority: int) -> int:
    row = db.execute(
        "INSERT INTO jobs_backgroundjob (tenant, kind, payload, status, priority, attempts, max_attempts, run_after, "
        "locked_by, last_error, created_at) VALUES ('', %s, '{}', 'pending', %s, 0, 5, now(), '', '', now()) "
        "RETURNING id",
        [kind, priority],
    ).fetchone()
    assert row is not None
    return int(row[0])


def wait_until_succeeded(db: psycopg.Connection[Any], jobs: list[int], worker: subprocess.Popen[str]) -> None:
    while True:
        [(done,)] = db.execute(
            "SELECT count(*) FROM jobs_backgroundjob WHERE id = ANY(%s) AND status = 'succeeded'", [jobs]
        ).fetchall()
        if done == len(jobs):
            return
        assert worker.poll() is None, "the worker exited (or was stopped at the deadline) with jobs unfinished"
        time.sleep(0.05)  # readiness polling, not waiting for time to pass


def test_run_jobs__a_database_crash_mid_drain_costs_the_lost_group_seconds_and_leaves_each_lost_attempt_recorded(
    cluster: Cluster, reap: Reap
) -> None:
    db = cluster.connect()
    before = [enqueue(db, "test.record", priority=3) for _ in range(3)]
    gate = enqueue(db, "test.gate", priority=2)
    after = [enqueue(db, "test.record", priority=1) for _ in range(3)]
    env = procs.child_env(
        DATABASE_URL=cluster.url,
        LOG_LEVEL="INFO",
        JOBS_LEASE_SECONDS=str(LEASE_SECONDS),
        WORKER_CHORE_INTERVAL_SECONDS=str(LEASE_SECONDS),
        JOBS_GROUP_MAX_MS="600000",  # one group: the three jobs before the gate wait in it, uncommitted
    )
    worker = reap(procs.manage("run_jobs", "--loop", env=env, stdin=subprocess.PIPE, stderr=subprocess.STDOUT))
    assert worker.stdin is not None and worker.stdout is not None
    deadline = threading.Timer(DEADLINE_SECONDS, worker.kill)
    deadline.start()
    output = Output(worker.stdout)
    try:
        output.read_until(f"STARTED job={gate} attempt=1")  # three handlers done, the fourth running

        cluster.restart(mode="immediate")  # a crash: what the server had not written out is lost
        db = cluster.connect()
        [(restarted_at,)] = db.execute("SELECT pg_postmaster_start_time()").fetchall()
        worker.stdin.write("finish\n")  # the gate's handler goes on, into a connection that is gone
        worker.stdin.flush()
        output.read_until(f"STARTED job={gate} attempt=2")
        worker.stdin.write("finish\n")
        worker.stdin.flush()
        wait_until_succeeded(db, [*before, gate, *after], worker)
        first_outage = len(output.lines)

        cluster.restart(mode="fast")  # a clean restart, the worker idle: its reconnect backs off from the start
        db = cluster.connect()
        late = enqueue(db, "test.record", priority=0)
        wait_until_succeeded(db, [late], worker)
    finally:
        deadline.cancel()
    worker.send_signal(signal.SIGTERM)
    rest, _ = worker.communicate(timeout=60)
    output.lines += rest.splitlines(keepends=True)

    assert worker.returncode == 0, "".join(output.lines[-40:])
    assert "Traceback" not in "".join(output.lines)
    rows = {
        row[0]: row[1:]
        for row in db.execute(
            "SELECT id, status, attempts, worker_ids, errors, finished_at FROM jobs_backgroundjob"
        ).fetchall()
    }
    # Each job's write committed once: the lost group's writes rolled back with it.
    runs = db.execute("SELECT job_id, count(*) FROM testing_handlerrun GROUP BY job_id").fetchall()
    assert dict(runs) == {job: 1 for job in [*before, gate, *after, late]}
    # The four jobs whose handlers had started lost that attempt, recorded with its worker and its time;
    # the three not started were given back, their attempt not spent.
    for job in [*before, gate]:
        status, attempts, workers, errors, finished_at = rows[job]
        assert (status, attempts, len(workers)) == ("succeeded", 2, 2)
        [error] = errors
        assert (error["attempt"], error["exception_class_path"]) == (1, "jobs.exceptions.ConnectionLost")
        assert error["traceback"].startswith(
            "jobs.exceptions.ConnectionLost: the worker lost its database connection on attempt 1 of 5: "
            f"the attempt's writes rolled back\nworker {workers[0]}; connection lost at "
        )
        # Run again within seconds of the restart, an hour before its lease would have expired.
        assert restarted_at < finished_at < restarted_at + timedelta(seconds=DEADLINE_SECONDS)
    for job in [*after, late]:
        status, attempts, workers, errors, _ = rows[job]
        assert (status, attempts, len(workers), errors) == ("succeeded", 1, 1, [])
    [taken_back] = output.logs("worker_recover")
    assert (taken_back["requeued"], taken_back["released"], taken_back["dead"]) == (4, 3, 0)
    # Each outage's first reconnect waited the least: the backoff started again after the first one.
    first, second = (
        [json.loads(line) for line in lines if '"worker_reconnect"' in line]
        for lines in (output.lines[:first_outage], output.lines[first_outage:])
    )
    assert first and second
    assert (first[0]["retryInSeconds"], second[0]["retryInSeconds"]) == (MINIMUM_BACKOFF, MINIMUM_BACKOFF)
