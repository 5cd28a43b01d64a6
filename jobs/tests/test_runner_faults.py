"""Runner processes killed mid-batch, and several drains of one queue at once: nothing lost, nothing run twice.

Counts scale with ORCHESTRATOR_STRESS (testsupport.stress): the CI
default, or the issue's full counts (10 kills during a 2,000-job drain).
"""

from __future__ import annotations

import random
import signal
import subprocess
from datetime import datetime, timedelta

import pytest
from django.conf import settings
from django.db.models import Count, Max, Min
from django.utils import timezone

from dispatch.registry import get_cron_job
from dispatch.services import dispatch_tick
from jobs.models import BackgroundJob
from runs.maintenance import run_maintenance
from runs.models import DeadLetter
from testsupport import drainer
from testsupport.models import HandlerRun
from testsupport.stress import scaled

KILLS = scaled(ci=3, full_count=10)
CRASH_JOBS = scaled(ci=400, full_count=2000)
CONTENDED_JOBS = scaled(ci=300, full_count=2000)
BATCH = 20
FINAL_ROUNDS = 10


def make_crash_queue(now: datetime, rng: random.Random) -> None:
    """Enqueue the mix: mostly crunching jobs, some that fail once, some that always fail (they end dead)."""
    jobs = []
    for index in range(CRASH_JOBS):
        if index % 20 == 0:
            kind, payload, max_attempts = "test.fail", {}, 2
        elif index % 20 == 1:
            kind, payload, max_attempts = "test.crunch", {"failUntil": 1, "rounds": 100}, 5
        else:
            kind, payload, max_attempts = "test.crunch", {"rounds": rng.randint(0, 3000)}, 5
        jobs.append(BackgroundJob(kind=kind, payload=payload, max_attempts=max_attempts, run_after=now, created_at=now))
    BackgroundJob.objects.bulk_create(jobs)


def latest_instant(floor: datetime) -> datetime:
    """Return the latest instant any runner has written so far (its clock is ours plus real time)."""
    latest = BackgroundJob.objects.aggregate(
        lease=Max("lease_expires_at"), started=Max("started_at"), finished=Max("finished_at"), due=Max("run_after")
    )
    instants: list[datetime] = [floor, *(value for value in latest.values() if value is not None)]
    return max(instants)


def kill_after_markers(runner: subprocess.Popen[str], markers: int) -> int:
    """Read STARTED lines until `markers` were seen, then SIGKILL the runner; return how many were seen."""
    assert runner.stdout is not None
    seen = 0
    for line in runner.stdout:
        seen += line.startswith("STARTED")
        if seen == markers:
            break
    runner.send_signal(signal.SIGKILL)
    runner.communicate(timeout=60)
    return seen


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_jobs_run__runners_killed_mid_batch_lose_nothing_and_complete_nothing_twice(now: datetime) -> None:
    rng = random.Random(6)  # varied kill points, the same ones on every run
    make_crash_queue(now, rng)
    clock = now
    recovered = 0
    for _ in range(KILLS):
        runner = drainer.start(at=clock, batch_size=BATCH)
        markers = rng.randint(2, CRASH_JOBS // (KILLS + 3))
        assert kill_after_markers(runner, markers) == markers, "the runner ran out of jobs before its kill"

        # Only the killed runner held leases: every running job is one it claimed.
        running = BackgroundJob.objects.filter(status=BackgroundJob.Status.RUNNING)
        assert all(f":{runner.pid}:" in job.locked_by for job in running)
        held = running.count()
        # Past every lease it held (time passed in, not waited for), maintenance returns its jobs.
        clock = latest_instant(clock) + timedelta(seconds=1)
        summary = run_maintenance(now=clock)
        assert sum(summary["recovered"].values()) == held
        assert not BackgroundJob.objects.filter(status=BackgroundJob.Status.RUNNING).exists()
        recovered += held

    # Restart runners, moving the clock past retry backoffs, until nothing is left to run.
    for _ in range(FINAL_ROUNDS):
        due = BackgroundJob.objects.filter(status=BackgroundJob.Status.PENDING).aggregate(at=Min("run_after"))["at"]
        if due is None:
            break
        clock = max(latest_instant(clock), due)
        runner = drainer.start(at=clock, batch_size=BATCH)
        output, _ = runner.communicate(timeout=600)
        assert runner.returncode == 0, output[-3000:]
        assert drainer.summary_of(output)["claimed"] > 0

    statuses = dict(BackgroundJob.objects.values_list("status").annotate(n=Count("id")))
    succeeded = BackgroundJob.objects.filter(status=BackgroundJob.Status.SUCCEEDED)
    print(f"\ncrash recovery: {CRASH_JOBS} jobs, {KILLS} kills, {recovered} claimed jobs recovered, {statuses}")
    assert recovered > 0  # the kills did interrupt claimed batches
    assert set(statuses) <= {"succeeded", "dead"}, statuses  # none lost, none stuck
    assert sum(statuses.values()) == CRASH_JOBS
    assert not BackgroundJob.objects.filter(kind="test.fail").exclude(status="dead").exists()
    # Each succeeded job completed exactly once, in its last attempt; nothing else completed.
    assert HandlerRun.objects.count() == succeeded.count()
    assert not HandlerRun.objects.values("job_id").annotate(n=Count("id")).filter(n__gt=1).exists()
    assert set(HandlerRun.objects.values_list("job_id", "attempt")) == set(succeeded.values_list("id", "attempts"))
    # Each dead job has its one dead letter.
    dead_ids = set(BackgroundJob.objects.filter(status="dead").values_list("id", flat=True))
    assert sorted(DeadLetter.objects.values_list("job_id", flat=True)) == sorted(dead_ids)


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_jobs_run__two_runner_processes_and_an_inline_tick_drain_one_queue_once() -> None:
    now = timezone.now()
    BackgroundJob.objects.bulk_create(
        [
            BackgroundJob(kind="test.crunch", payload={"rounds": 200}, run_after=now, created_at=now)
            for _ in range(CONTENDED_JOBS)
        ]
    )
    runners = [drainer.start(batch_size=10, wait=True) for _ in range(2)]
    for runner in runners:
        assert runner.stdout is not None
        for line in runner.stdout:
            if line.startswith("READY"):
                break
    for runner in runners:
        assert runner.stdin is not None
        runner.stdin.write("go\n")
        runner.stdin.flush()
    job = get_cron_job("background-jobs")
    assert job is not None
    assert not settings.INNGEST_EVENT_KEY  # nothing configured: the tick runs inline

    tick = dispatch_tick(job=job, now=timezone.now(), source="cron", correlation_id="contended")
    outputs = [runner.communicate(timeout=600)[0] for runner in runners]

    assert [runner.returncode for runner in runners] == [0, 0], [output[-2000:] for output in outputs]
    assert (tick.status_code, tick.body["mode"]) == (200, "inline")
    inline = tick.body["summary"]["process-background-jobs"]
    drains = [drainer.summary_of(output) for output in outputs] + [inline]
    print(f"\ncontended drain: {CONTENDED_JOBS} jobs, succeeded per drain {[d['succeeded'] for d in drains]}")
    # Every job ran exactly once, in its first attempt, whichever of the three drains claimed it.
    assert sum(drain["succeeded"] for drain in drains) == CONTENDED_JOBS
    assert sum(drain["claimed"] for drain in drains) == CONTENDED_JOBS
    assert HandlerRun.objects.count() == CONTENDED_JOBS
    assert HandlerRun.objects.values("job_id").distinct().count() == CONTENDED_JOBS
    assert BackgroundJob.objects.filter(status="succeeded", attempts=1).count() == CONTENDED_JOBS
