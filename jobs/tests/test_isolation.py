"""A handler's outcome is its own: whatever it does, its neighbours commit once, and the worker goes on.

Each misbehaving handler of testsupport.unruly runs between two well-behaved jobs,
in `run_jobs` as a real process at the default group settings (and one job per
transaction): the neighbours succeed in their one attempt with exactly one committed
write, the bad job fails with its own error, and the process exits 0 having printed
nothing but its summary and its log lines.
"""

from __future__ import annotations

import signal
import subprocess
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from jobs.runner import jobs_run
from jobs.tests.test_worker import read_until_drained, read_until_logged, summaries, worker
from testsupport import drainer, procs
from testsupport.models import HandlerRun
from testsupport.unruly import EXPECTED, assert_each_outcome_is_its_own, enqueue_between_neighbours, job_at, succeeding

pytestmark = pytest.mark.django_db(transaction=True)

Reap = Callable[[subprocess.Popen[str]], subprocess.Popen[str]]


def assert_only_logs_and_summaries(output: str) -> None:
    """Every line is a JSON document (a log line or a summary): no traceback, no stray print."""
    stray = [line for line in output.splitlines() if line.strip() and not line.startswith("{")]
    assert not stray, "\n".join(stray[:40])


@pytest.mark.parametrize("group_max_jobs", ["50", "1"], ids=["default-groups", "one-job-per-transaction"])
def test_run_jobs__each_misbehaving_handler_fails_alone_and_its_neighbours_commit_once(
    now: datetime, group_max_jobs: str
) -> None:
    neighbours, bad = enqueue_between_neighbours(now, list(EXPECTED))

    result = procs.run_manage("run_jobs", env=procs.child_env(JOBS_GROUP_MAX_JOBS=group_max_jobs))

    assert result.returncode == 0, result.stderr[-5000:]
    assert_only_logs_and_summaries(result.stdout + result.stderr)
    assert_each_outcome_is_its_own(neighbours, bad)
    [summary] = summaries(result.stdout)
    assert (summary["claimed"], summary["succeeded"], summary["retried"], summary["dead"]) == (
        len(neighbours) + len(bad),
        len(neighbours) + succeeding(list(bad)),
        len(bad) - succeeding(list(bad)),
        0,
    )


def test_run_jobs__a_standing_worker_survives_a_mix_of_misbehaving_handlers(now: datetime, reap: Reap) -> None:
    process = worker(reap)
    first = enqueue_between_neighbours(now, list(EXPECTED)[::2])
    read_until_drained(process, succeeded=len(first[0]) + succeeding(list(first[1])))
    second = enqueue_between_neighbours(now, list(EXPECTED)[1::2])
    read_until_drained(process, succeeded=len(second[0]) + succeeding(list(second[1])))

    assert process.poll() is None  # still draining
    later = job_at(now, "test.record", 0, max_attempts=1)
    read_until_drained(process, succeeded=1)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=60)

    assert process.returncode == 0, output
    assert_only_logs_and_summaries(output)
    assert_each_outcome_is_its_own([*first[0], *second[0], later], {**first[1], **second[1]})


def test_jobs_run__a_heartbeat_keeps_the_leases_of_the_jobs_waiting_in_its_group(now: datetime, reap: Reap) -> None:
    quick = job_at(now, "test.record", 2, max_attempts=1)
    slow = job_at(now, "test.gate", 1, max_attempts=1, payload={"beats": 1})
    # A short lease, and a group that stays open while the slow job runs.
    first = reap(drainer.start(at=now, JOBS_LEASE_SECONDS="4", JOBS_GROUP_MAX_MS="2000"))
    assert first.stdout is not None and first.stdin is not None
    procs.read_until(first.stdout, f"STARTED job={slow.pk} ")
    quick.refresh_from_db()
    assert (quick.status, quick.started_at is not None) == ("running", True)  # done, waiting for its group's commit
    leased_until = quick.lease_expires_at
    assert leased_until is not None

    first.stdin.write("beat\n")
    first.stdin.flush()
    assert procs.read_until(first.stdout, "HEARTBEAT").strip() == f"HEARTBEAT job={slow.pk} ok=True"

    # The heartbeat renewed the lease of the job waiting in the group too: a second worker, just past the
    # lease the quick job had before (its clock set there), finds nothing to take back or run.
    quick.refresh_from_db()
    assert quick.lease_expires_at is not None and quick.lease_expires_at > leased_until
    second = drainer.start(at=leased_until + timedelta(milliseconds=1), recover=True)
    output, _ = second.communicate(timeout=60)
    assert second.returncode == 0, output
    assert drainer.recovered_of(output) == {"requeued": 0, "released": 0, "dead": 0}
    assert drainer.summary_of(output)["claimed"] == 0

    output, _ = first.communicate("finish\n", timeout=60)
    assert first.returncode == 0, output
    assert "running its jobs again" not in output
    assert (drainer.summary_of(output)["claimed"], drainer.summary_of(output)["succeeded"]) == (2, 2)
    # Each ran once, in the first worker, and committed once.
    assert sorted(HandlerRun.objects.values_list("job_id", "attempt")) == sorted([(quick.pk, 1), (slow.pk, 1)])
    for job in (quick, slow):
        job.refresh_from_db()
        assert (job.status, job.attempts) == ("succeeded", 1)


def test_run_jobs__a_heartbeat_in_a_group_whose_earlier_jobs_failed_renews_and_the_drain_goes_on(now: datetime) -> None:
    before = job_at(now, "test.record", 4, max_attempts=1)
    retried = job_at(now, "test.fail", 3, max_attempts=2)  # its retry is written in the group, its row locked
    buried = job_at(now, "test.fail", 2, max_attempts=1)  # buried in the group, with its dead letter
    beating = job_at(now, "test.heartbeat", 1, max_attempts=1)  # fails if its heartbeat says the lease is lost

    result = procs.run_manage("run_jobs", env=procs.child_env(JOBS_GROUP_MAX_MS="20000"), timeout=60)

    assert result.returncode == 0, result.stderr[-5000:]
    assert_only_logs_and_summaries(result.stdout + result.stderr)
    [summary] = summaries(result.stdout)
    assert (summary["claimed"], summary["succeeded"], summary["retried"], summary["dead"]) == (4, 2, 1, 1)
    for job in (before, retried, buried, beating):
        job.refresh_from_db()
    assert [(job.status, job.attempts) for job in (before, retried, buried, beating)] == [
        ("succeeded", 1),
        ("pending", 1),
        ("dead", 1),
        ("succeeded", 1),
    ]
    assert sorted(HandlerRun.objects.values_list("job_id", flat=True)) == sorted([before.pk, beating.pk])


def test_run_jobs__a_rolled_back_group_run_again_stops_at_a_stop_signal_and_gives_the_rest_back(
    now: datetime, reap: Reap
) -> None:
    before = job_at(now, "test.record", 5, max_attempts=1)
    guilty = job_at(now, "test.dangling_reference", 4, max_attempts=2)  # its writes fail the group's COMMIT
    gate = job_at(now, "test.gate", 3, max_attempts=1)
    after = [job_at(now, "test.record", 2 - index, max_attempts=1) for index in range(2)]
    process = worker(reap, "--batch-size", "10", JOBS_GROUP_MAX_MS="30000")  # the whole batch in one group
    assert process.stdout is not None and process.stdin is not None
    procs.read_until(process.stdout, f"STARTED job={gate.pk} attempt=1")
    process.stdin.write("finish\n")  # the group ends, its COMMIT refused: its jobs run again one at a time
    process.stdin.flush()
    procs.read_until(process.stdout, f"STARTED job={gate.pk} attempt=1")  # the gate runs again

    process.send_signal(signal.SIGTERM)
    read_until_logged(process, "worker stopping")
    output, _ = process.communicate("finish\n", timeout=60)  # the running job may finish; the rest go back

    assert process.returncode == 0, output
    assert_only_logs_and_summaries(output)
    [summary] = summaries(output)
    assert (summary["claimed"], summary["succeeded"], summary["retried"]) == (3, 2, 1)
    for job in (before, gate):
        job.refresh_from_db()
        assert (job.status, job.attempts) == ("succeeded", 1)
    guilty.refresh_from_db()
    assert (guilty.status, guilty.attempts, guilty.last_error[:16]) == ("pending", 1, "IntegrityError: ")
    # Not run again: back in the queue, the attempt the rolled-back group had spent given back.
    for job in after:
        job.refresh_from_db()
        assert (job.status, job.attempts, job.locked_by, job.started_at) == ("pending", 0, "", None)
    assert sorted(HandlerRun.objects.values_list("job_id", flat=True)) == sorted([before.pk, gate.pk])


def test_jobs_run__a_task_with_autocommit_runs_outside_the_group_where_a_durable_block_works(
    now: datetime, settings: Any
) -> None:
    settings.JOBS_GROUP_MAX_MS = 600_000
    before = job_at(now, "test.record", 3, max_attempts=1)
    own = job_at(now, "testsupport.tasks.autocommit_writes", 2, max_attempts=1, payload={})
    after = job_at(now, "test.record", 1, max_attempts=1)

    summary = jobs_run(budget_seconds=30, clock=lambda: now)

    assert (summary.claimed, summary.succeeded) == (3, 3)
    runs = Counter(HandlerRun.objects.values_list("job_id", flat=True))
    assert [runs[job.pk] for job in (before, own, after)] == [1, 1, 1]
    own.refresh_from_db()
    [run] = HandlerRun.objects.filter(job_id=own.pk)
    assert (own.status, own.attempts, own.return_value) == ("succeeded", 1, run.pk)


def test_jobs_run__a_failing_autocommit_handler_keeps_what_it_committed_and_is_retried(
    now: datetime, settings: Any
) -> None:
    settings.JOBS_GROUP_MAX_MS = 600_000
    before = job_at(now, "test.record", 3, max_attempts=1)
    failing = job_at(now, "test.autocommit_write_then_fail", 2, max_attempts=2)
    after = job_at(now, "test.record", 1, max_attempts=1)

    summary = jobs_run(budget_seconds=30, clock=lambda: now)

    assert (summary.claimed, summary.succeeded, summary.retried) == (3, 2, 1)
    failing.refresh_from_db()
    assert (failing.status, failing.attempts) == ("pending", 1)
    assert failing.last_error == "ValueError: test.autocommit_write_then_fail fails attempt 1 after writing"
    # Its statements committed as they ran: its write stays, as under any autocommit worker.
    runs = Counter(HandlerRun.objects.values_list("job_id", flat=True))
    assert [runs[job.pk] for job in (before, failing, after)] == [1, 1, 1]


def test_jobs_run__a_real_sigint_still_stops_a_drain_on_the_main_thread_and_a_handlers_own_is_its_failure(
    now: datetime, reap: Reap
) -> None:
    own = job_at(now, "unruly.keyboard_interrupt", 2, max_attempts=2)
    stuck = job_at(now, "test.block", 1, max_attempts=2, payload={"seconds": 3600})
    # A plain Python process: SIGINT raises KeyboardInterrupt on its main thread, wherever that thread is.
    runner = reap(drainer.start(at=now, JOBS_GROUP_MAX_JOBS="1"))
    assert runner.stdout is not None
    procs.read_until(runner.stdout, f"STARTED job={stuck.pk} ")

    runner.send_signal(signal.SIGINT)
    output, _ = runner.communicate(timeout=60)

    assert runner.returncode != 0 and "KeyboardInterrupt" in output  # the signal stopped the drain
    own.refresh_from_db()
    assert (own.status, own.last_error, len(own.errors)) == ("pending", "KeyboardInterrupt", 1)
    # The signal is no failure of the job it interrupted: still claimed, for lease recovery to return.
    stuck.refresh_from_db()
    assert (stuck.status, stuck.attempts, stuck.errors) == ("running", 1, [])
