from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.test import override_settings

from dispatch.models import DispatchWindow
from jobs import maintenance
from jobs.models import BackgroundJob, QueueHealthSnapshot
from runs.maintenance import prune, queue_health, run_maintenance
from runs.models import DeadLetter, FunctionRun
from runs.status import status_read

pytestmark = pytest.mark.django_db

Job = Callable[..., BackgroundJob]
OLD = timedelta(days=40)


def _dead_job(make_job: Job, now: datetime, *, resolved: bool) -> BackgroundJob:
    job = make_job(status="dead", finished_at=now - OLD, attempts=5)
    DeadLetter.objects.create(
        source="job",
        job=job,
        kind=job.kind,
        created_at=now - OLD,
        resolved_at=now - OLD if resolved else None,
        resolution="resolved" if resolved else "",
    )
    return job


def _window(now: datetime, key: str, age: timedelta) -> DispatchWindow:
    return DispatchWindow.objects.create(
        dispatch_key=key,
        job="background-jobs",
        status="inline",
        mode="inline",
        source="cron",
        correlation_id="c",
        window_start=now - age,
        window_seconds=60,
        requested_at=now - age,
        created_at=now - age,
    )


def test_prune__deletes_history_past_retention_but_never_an_unresolved_dead_letter(
    make_job: Job, now: datetime
) -> None:
    old_done = make_job(status="succeeded", finished_at=now - OLD)
    recent_done = make_job(status="succeeded", finished_at=now - timedelta(days=1))
    pending = make_job(created_at=now - OLD)
    unresolved = _dead_job(make_job, now, resolved=False)
    resolved = _dead_job(make_job, now, resolved=True)
    old_window = _window(now, "cron:background-jobs:old", OLD)
    new_window = _window(now, "cron:background-jobs:new", timedelta(hours=1))
    run_with_letter = FunctionRun.objects.create(
        function_id="f", dispatch_key="k1", run_id="r1", status="failed", terminal_reason="x", started_at=now - OLD
    )
    DeadLetter.objects.create(source="function_run", function_run=run_with_letter, kind="f", created_at=now - OLD)
    old_run = FunctionRun.objects.create(
        function_id="f", dispatch_key="k2", run_id="r2", status="succeeded", started_at=now - OLD
    )

    result = prune(now=now)

    assert result == {"deadLetters": 1, "jobs": 2, "runs": 1, "windows": 1, "queueHealthSnapshots": 0}
    remaining_jobs = set(BackgroundJob.objects.values_list("pk", flat=True))
    assert remaining_jobs == {recent_done.pk, pending.pk, unresolved.pk}
    assert old_done.pk not in remaining_jobs and resolved.pk not in remaining_jobs
    assert list(DeadLetter.objects.filter(source="job").values_list("job_id", flat=True)) == [unresolved.pk]
    assert DeadLetter.objects.filter(function_run=run_with_letter).exists()
    assert not FunctionRun.objects.filter(pk=old_run.pk).exists()
    assert list(DispatchWindow.objects.values_list("pk", flat=True)) == [new_window.pk]
    assert old_window.pk != new_window.pk


@override_settings(MAINTENANCE_PRUNE_BATCH_SIZE=2, MAINTENANCE_PRUNE_MAX_BATCHES=3)
def test_prune__is_bounded_per_run(make_job: Job, now: datetime) -> None:
    for _ in range(10):
        make_job(status="succeeded", finished_at=now - OLD)

    assert prune(now=now)["jobs"] == 6
    assert prune(now=now)["jobs"] == 4
    assert prune(now=now)["jobs"] == 0


def test_queue_health__reports_backlog_lag_and_dead_letters_and_stores_a_blob(make_job: Job, now: datetime) -> None:
    make_job(run_after=now - timedelta(seconds=90))
    make_job(run_after=now - timedelta(seconds=10))
    make_job(run_after=now + timedelta(hours=1))
    make_job(status="running", lease_expires_at=now + timedelta(minutes=1))
    _dead_job(make_job, now, resolved=False)

    health = queue_health(now=now)

    assert health == {
        "pending": 3,
        "ready": 2,
        "running": 1,
        "dead": 1,
        "lagSeconds": 90.0,
        "unresolvedDeadLetters": 1,
    }
    blob = status_read(scope="global", job_name="queue-health")
    assert blob is not None
    assert blob["output"] == health
    assert blob["status"] == "ok"


def test_queue_health__stores_a_snapshot_per_run(make_job: Job, now: datetime) -> None:
    make_job(run_after=now - timedelta(seconds=90))
    make_job(run_after=now + timedelta(hours=1))
    queue_health(now=now - timedelta(minutes=1))

    queue_health(now=now)

    snapshots = list(QueueHealthSnapshot.objects.order_by("taken_at").values())
    assert [(row["taken_at"], row["ready"], row["pending"], row["lag_seconds"]) for row in snapshots] == [
        (now - timedelta(minutes=1), 1, 2, 30.0),
        (now, 1, 2, 90.0),
    ]
    assert str(QueueHealthSnapshot.objects.latest()) == "queue health at 2026-03-14 15:09:26 UTC: 1 ready, lag 90 s"


@override_settings(WINDOWS_RETENTION_DAYS=30)
def test_prune__drops_snapshots_kept_as_long_as_windows(now: datetime) -> None:
    queue_health(now=now - timedelta(days=31))
    queue_health(now=now - timedelta(days=29))

    assert prune(now=now)["queueHealthSnapshots"] == 1
    assert list(QueueHealthSnapshot.objects.values_list("taken_at", flat=True)) == [now - timedelta(days=29)]


def test_run_maintenance__runs_registered_tasks_and_survives_a_broken_one(now: datetime) -> None:
    calls: list[datetime] = []

    def good(*, now: datetime) -> dict[str, Any]:
        calls.append(now)
        return {"touched": 3}

    def broken(*, now: datetime) -> dict[str, Any]:
        raise KeyError("boom")

    saved = dict(maintenance._tasks)
    try:
        maintenance.maintenance_task("good")(good)
        maintenance.maintenance_task("broken")(broken)
        summary = run_maintenance(now=now)
    finally:
        maintenance._tasks.clear()
        maintenance._tasks.update(saved)

    assert calls == [now]
    assert summary["tasks"] == {"broken": {"error": "KeyError: 'boom'"}, "good": {"touched": 3}}
    assert set(summary) >= {"recovered", "pruned", "health", "durationMs"}


def test_run_maintenance__reconciles_every_cron_jobs_windows(now: datetime) -> None:
    start = now.replace(minute=0, second=0, microsecond=0)
    DispatchWindow.objects.create(
        dispatch_key=f"cron:counter:{start:%Y-%m-%dT%H:%M}", job="counter", status="enqueued", mode="dispatch",
        source="cron", correlation_id="c", window_start=start, window_seconds=300, requested_at=start,
    )  # fmt: skip

    summary = run_maintenance(now=now)

    # 15:09:26: 15:05 has ended, but is inside its grace (one window): 15:00 is the last window due.
    assert (summary["reconciled"]["missed"], summary["reconciled"]["jobs"]) == (0, {})
    later = run_maintenance(now=now + timedelta(minutes=20))
    assert later["reconciled"]["jobs"]["counter"]["missed"] == 3  # 15:05, 15:10, 15:15 (15:20 is in its grace)


def test_run_maintenance__a_failing_reconciler_is_reported_and_the_rest_runs(
    now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*, now: datetime) -> dict[str, Any]:
        raise RuntimeError("registry on fire")

    monkeypatch.setattr("runs.maintenance.reconcile", broken)

    summary = run_maintenance(now=now)

    assert summary["reconciled"] == {"error": "RuntimeError: registry on fire"}
    assert set(summary) >= {"recovered", "pruned", "health", "durationMs"}
