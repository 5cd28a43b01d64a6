from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from dispatch.models import DispatchWindow
from dispatch.registry import get_cron_job
from dispatch.services import dispatch_tick
from jobs.models import BackgroundJob
from orchestrator.testing.models import CronRun, HandlerRun

pytestmark = pytest.mark.django_db


def tick(job: str = "counter", **kwargs: Any) -> Any:
    cron_job = get_cron_job(job)
    assert cron_job is not None
    kwargs.setdefault("source", "cron")
    kwargs.setdefault("correlation_id", "corr-1")
    return dispatch_tick(job=cron_job, **kwargs)


def test_dispatch_tick__inline_runs_once_and_records_the_window(now: datetime) -> None:
    result = tick(now=now, params={"tenant": "acme"})

    assert result.status_code == 200
    body = result.body
    assert body | {"latencyMs": 0} == {
        "mode": "inline",
        "job": "counter",
        "dispatchKey": "cron:counter:2026-03-14T15:05",
        "correlationId": "corr-1",
        "requestedAt": "2026-03-14T15:09:26.500Z",
        "dispatchWindowStart": "2026-03-14T15:05:00.000Z",
        "dispatchWindowSeconds": 300,
        "enqueued": False,
        "duplicate": False,
        "eventIds": [],
        "summary": {"cronRunId": CronRun.objects.get().pk, "params": {"tenant": "acme"}},
        "latencyMs": 0,
    }
    assert isinstance(body["latencyMs"], int)
    window = DispatchWindow.objects.get()
    assert (window.dispatch_key, window.status, window.mode, window.source) == (
        "cron:counter:2026-03-14T15:05",
        "inline",
        "inline",
        "cron",
    )
    assert (window.correlation_id, window.requested_at, window.window_seconds) == ("corr-1", now, 300)
    assert window.latency_ms is not None


def test_dispatch_tick__a_second_tick_in_the_window_is_a_duplicate(now: datetime) -> None:
    tick(now=now)

    second = tick(now=now + timedelta(seconds=20), correlation_id="corr-2")

    assert second.status_code == 200
    assert second.body["duplicate"] is True
    assert (second.body["mode"], second.body["summary"], second.body["correlationId"]) == ("inline", None, "corr-2")
    assert CronRun.objects.count() == 1
    assert DispatchWindow.objects.get().duplicate_ticks == 1


def test_dispatch_tick__the_next_window_runs_again(now: datetime) -> None:
    tick(now=now)
    later = tick(now=now + timedelta(minutes=5))

    assert later.body["duplicate"] is False
    assert later.body["dispatchKey"] == "cron:counter:2026-03-14T15:10"
    assert CronRun.objects.count() == 2


def test_dispatch_tick__at_picks_the_window(now: datetime) -> None:
    result = tick(now=now, at=datetime.fromisoformat("2026-01-01T00:04:59+00:00"))

    assert result.body["dispatchKey"] == "cron:counter:2026-01-01T00:00"
    assert result.body["requestedAt"] == "2026-03-14T15:09:26.500Z"


def test_dispatch_tick__force_bypasses_the_window(now: datetime) -> None:
    tick(now=now)

    forced = tick(now=now, force=True, source="manual")

    assert forced.body["duplicate"] is False
    assert forced.body["dispatchKey"].startswith("cron:counter:2026-03-14T15:05:manual-")
    assert CronRun.objects.count() == 2


def test_dispatch_tick__inline_requested_is_inline_forced(now: datetime) -> None:
    result = tick(now=now, inline=True, source="emergency")

    assert result.body["mode"] == "inline-forced"
    assert DispatchWindow.objects.get().source == "emergency"
    assert CronRun.objects.get().source == "emergency"


def test_dispatch_tick__force_inline_setting(now: datetime, settings: Any) -> None:
    settings.BACKGROUND_JOBS_FORCE_INLINE = True

    assert tick(now=now).body["mode"] == "inline-forced"


def test_dispatch_tick__a_crashing_inline_run_answers_500_and_frees_the_window(now: datetime) -> None:
    result = tick("crash", now=now)

    assert result.status_code == 500
    assert result.body["mode"] == "inline"
    assert result.body["summary"] is None
    assert result.body["error"] == "inline run crashed: RuntimeError: the crash cron job always crashes"
    window = DispatchWindow.objects.get()
    assert (window.status, window.error) == ("dispatch_failed", "RuntimeError: the crash cron job always crashes")
    # The failed window is re-claimed by the next tick (which crashes again here).
    again = tick("crash", now=now + timedelta(seconds=10))
    assert again.body["duplicate"] is False
    assert DispatchWindow.objects.count() == 1


def test_dispatch_tick__a_stale_pending_window_is_reclaimed(now: datetime) -> None:
    DispatchWindow.objects.create(
        dispatch_key="cron:counter:2026-03-14T15:05",
        job="counter",
        status="pending",
        mode="inline",
        source="cron",
        correlation_id="dead-request",
        window_start=now.replace(minute=5, second=0, microsecond=0),
        window_seconds=300,
        requested_at=now - timedelta(seconds=25),
        updated_at=now - timedelta(seconds=25),
    )

    fresh = tick(now=now - timedelta(seconds=15))  # 10 s later: still within 2 x the inline budget
    stale = tick(now=now)  # 25 s later: the pending tick is presumed dead

    assert fresh.body["duplicate"] is True
    assert stale.body["duplicate"] is False
    assert CronRun.objects.count() == 1
    window = DispatchWindow.objects.get()
    assert (window.status, window.correlation_id) == ("inline", "corr-1")


def test_dispatch_tick__background_jobs_inline_runs_maintenance_then_drains(now: datetime) -> None:
    for _ in range(3):
        BackgroundJob.objects.create(kind="test.record", run_after=now)
    BackgroundJob.objects.create(kind="test.fail", run_after=now, max_attempts=1)

    result = tick("background-jobs", now=now)

    summary = result.body["summary"]
    assert (summary["process"]["claimed"], summary["process"]["succeeded"], summary["process"]["dead"]) == (4, 3, 1)
    assert summary["maintenance"]["health"]["ready"] == 4
    assert HandlerRun.objects.count() == 3
