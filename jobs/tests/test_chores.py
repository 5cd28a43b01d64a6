"""A standing worker's chores: expired leases recovered and the reconciler run, at start and every few minutes."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from dispatch import keys
from dispatch.models import DispatchWindow
from jobs import hooks
from jobs.chores import WorkerChores
from jobs.models import BackgroundJob
from testsupport import procs

DEADLINE_SECONDS = 60.0


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.seconds = 1000.0

    def __call__(self) -> float:
        return self.seconds


@pytest.mark.django_db
def test_worker_chores__reconcile_at_start_then_once_per_interval(
    now: datetime, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.WORKER_CHORE_INTERVAL_SECONDS = 300
    calls: list[datetime] = []

    def chore(*, now: datetime) -> dict[str, Any]:
        calls.append(now)
        return {"missed": 0}

    monkeypatch.setattr(hooks._worker_chore, "_target", chore)
    clock = Clock()
    chores = WorkerChores(monotonic=clock)

    first = chores.run_if_due(now=now)
    clock.seconds += 299
    early = chores.run_if_due(now=now + timedelta(seconds=299))
    clock.seconds += 1
    second = chores.run_if_due(now=now + timedelta(seconds=300))

    assert first == {"recovered": {"requeued": 0, "released": 0, "dead": 0}, "reconciled": {"missed": 0}}
    assert early is not None and "reconciled" not in early
    assert second == {"reconciled": {"missed": 0}}
    assert calls == [now, now + timedelta(seconds=300)]


@pytest.mark.django_db
def test_worker_chores__take_back_a_dead_workers_lease_as_it_expires_not_a_chore_interval_later(
    make_job: Callable[..., BackgroundJob], now: datetime, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.WORKER_CHORE_INTERVAL_SECONDS = 300
    settings.JOBS_LEASE_SECONDS = 60
    monkeypatch.setattr(hooks._worker_chore, "_target", lambda *, now: {"missed": 0})
    started = now - timedelta(seconds=30)  # its handler started, then its worker died: 30 s of its lease are left
    lost = make_job(
        status="running", attempts=1, started_at=started, lease_expires_at=started + timedelta(seconds=60),
        locked_by="gone:7:dead01", worker_ids=["gone:7:dead01"],
    )  # fmt: skip
    clock = Clock()
    chores = WorkerChores(monotonic=clock)

    at_start = chores.run_if_due(now=now)
    clock.seconds += 30.5
    as_it_expires = chores.run_if_due(now=now + timedelta(seconds=30.5))

    assert at_start is not None and at_start["recovered"] == {"requeued": 0, "released": 0, "dead": 0}
    assert as_it_expires == {"recovered": {"requeued": 1, "released": 0, "dead": 0}}
    lost.refresh_from_db()
    assert (lost.status, lost.attempts, lost.locked_by) == ("pending", 1, "")
    [error] = lost.errors
    assert error["exception_class_path"] == "jobs.exceptions.LeaseExpired"
    assert "worker gone:7:dead01;" in error["traceback"]
    # Nothing running now: the next look is a lease away, before any claim made from now on can expire.
    assert chores.due_in() == 60


@pytest.mark.django_db
def test_worker_chores__a_lease_recovery_that_took_nothing_back_logs_at_debug(
    now: datetime, settings: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings.WORKER_CHORE_INTERVAL_SECONDS = 300
    settings.JOBS_LEASE_SECONDS = 60
    monkeypatch.setattr(hooks._worker_chore, "_target", lambda *, now: {"missed": 0})
    clock = Clock()
    chores = WorkerChores(monotonic=clock)

    with caplog.at_level("DEBUG", logger="jobs.chores"):
        chores.run_if_due(now=now)  # at start: the reconciler too
        clock.seconds += 60
        chores.run_if_due(now=now + timedelta(seconds=60))  # an idle worker's lease recovery, nothing expired

    assert [(record.levelname, "reconciled" in record.__dict__) for record in caplog.records] == [
        ("INFO", True),
        ("DEBUG", False),
    ]


@pytest.mark.django_db
def test_worker_chores__a_failing_chore_is_reported_and_the_worker_goes_on(
    now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(*, now: datetime) -> dict[str, Any]:
        raise RuntimeError("reconciler down")

    monkeypatch.setattr(hooks._worker_chore, "_target", broken)

    summary = WorkerChores().run_if_due(now=now)

    assert summary == {
        "recovered": {"requeued": 0, "released": 0, "dead": 0},
        "reconciled": {"error": "RuntimeError: reconciler down"},
    }


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_run_jobs_loop__recovers_a_lost_lease_and_records_missed_windows_without_any_tick(
    make_job: Callable[..., BackgroundJob],
) -> None:
    """A deployment of standing workers alone: no cron service, no Inngest, no maintenance tick."""
    died = timezone.now() - timedelta(minutes=6)  # its handler started, then its worker died
    lost = make_job(status="running", attempts=1, started_at=died, lease_expires_at=died + timedelta(minutes=1))
    start = keys.window_start(timezone.now() - timedelta(hours=1), 300)
    DispatchWindow.objects.create(
        dispatch_key=keys.dispatch_key("counter", start), job="counter", status="enqueued", mode="dispatch",
        source="cron", correlation_id="tick", window_start=start, window_seconds=300, requested_at=start,
    )  # fmt: skip
    worker = procs.manage(
        "run_jobs", "--loop", "--budget", "1", env=procs.child_env(WORKER_CHORE_INTERVAL_SECONDS="3600")
    )
    try:
        deadline = time.monotonic() + DEADLINE_SECONDS
        while not (
            DispatchWindow.objects.filter(status="missed").exists()
            and BackgroundJob.objects.filter(pk=lost.pk, status="succeeded").exists()
        ):
            assert worker.poll() is None, worker.communicate()
            assert time.monotonic() < deadline, "the worker did not do its chores"
            time.sleep(0.05)  # readiness polling, not waiting for time to pass
    finally:
        worker.terminate()
        worker.communicate(timeout=30)

    lost.refresh_from_db()
    assert (lost.attempts, lost.status) == (2, "succeeded")  # recovered from its dead worker, then run
    assert DispatchWindow.objects.filter(job="counter", status="missed", source="reconciler").count() >= 9
