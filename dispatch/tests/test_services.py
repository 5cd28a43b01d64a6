from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db.models import F
from django.utils import timezone

from dispatch.models import DispatchWindow
from dispatch.registry import get_cron_job
from dispatch.services import dispatch_tick
from jobs.models import BackgroundJob
from runs.models import DeadLetter, FunctionRun
from testsupport.models import CronRun, HandlerRun

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
        "summary": {"cron-counter": {"cronRunId": CronRun.objects.get().pk, "params": {"tenant": "acme"}}},
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
    # The inline run is in the ledger, like an Inngest run of the same window would be.
    run = FunctionRun.objects.get()
    assert (run.function_id, run.dispatch_key, run.status, run.source, run.scope) == (
        "cron-counter",
        "cron:counter:2026-03-14T15:05",
        "succeeded",
        "cron",
        "acme",
    )
    assert run.run_id.startswith("inline-")
    assert run.output == body["summary"]["cron-counter"]


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


def test_dispatch_tick__a_crashing_inline_run_answers_500_and_is_dead_lettered(now: datetime) -> None:
    result = tick("crash", now=now)

    assert result.status_code == 500
    assert result.body["mode"] == "inline"
    assert result.body["summary"] == {"cron-crash": None}
    assert result.body["error"] == "inline run crashed: cron-crash: RuntimeError: the crash cron job always crashes"
    window = DispatchWindow.objects.get()
    assert (window.status, window.error) == ("inline", result.body["error"])
    run = FunctionRun.objects.get()
    assert (run.status, run.terminal_reason) == ("failed", "inline run crashed")
    letter = DeadLetter.objects.get()
    assert (letter.source, letter.function_run_id, letter.kind) == ("function_run", run.pk, "cron-crash")
    assert letter.payload is not None
    assert (letter.payload["event"], letter.payload["data"]["dispatchKey"]) == (
        "cron/crash.requested",
        "cron:crash:2026-03-14T15:09",
    )
    # One run per window: the next tick of the window is a duplicate; the next window runs again.
    again = tick("crash", now=now + timedelta(seconds=10))
    assert again.body["duplicate"] is True


def test_dispatch_tick__a_stale_pending_window_is_reclaimed(now: datetime) -> None:
    window = DispatchWindow.objects.create(
        dispatch_key="cron:counter:2026-03-14T15:05",
        job="counter",
        status="pending",
        mode="inline",
        source="cron",
        correlation_id="dead-request",
        window_start=now.replace(minute=5, second=0, microsecond=0),
        window_seconds=300,
        requested_at=now - timedelta(seconds=25),
        # Pending is judged on the database's clock: claimed 10 s ago, within 2 x the inline budget.
        updated_at=timezone.now() - timedelta(seconds=10),
    )

    fresh = tick(now=now)
    DispatchWindow.objects.filter(pk=window.pk).update(updated_at=F("updated_at") - timedelta(seconds=15))
    stale = tick(now=now)  # claimed 25 s ago: the pending tick is presumed dead

    assert fresh.body["duplicate"] is True
    assert stale.body["duplicate"] is False
    assert CronRun.objects.count() == 1
    window.refresh_from_db()
    assert (window.status, window.correlation_id, window.claim) == ("inline", "corr-1", 2)


def test_dispatch_tick__background_jobs_inline_runs_maintenance_then_drains(now: datetime) -> None:
    for _ in range(3):
        BackgroundJob.objects.create(kind="test.record", run_after=now)
    BackgroundJob.objects.create(kind="test.fail", run_after=now, max_attempts=1)

    result = tick("background-jobs", now=now)

    summary = result.body["summary"]
    assert list(summary) == ["background-maintenance", "process-background-jobs"]
    process = summary["process-background-jobs"]
    assert (process["claimed"], process["succeeded"], process["dead"]) == (4, 3, 1)
    assert summary["background-maintenance"]["health"]["ready"] == 4
    assert HandlerRun.objects.count() == 3
    assert set(FunctionRun.objects.values_list("function_id", "status")) == {
        ("background-maintenance", "succeeded"),
        ("process-background-jobs", "succeeded"),
    }


def test_dispatch_tick__inline_skips_a_unit_whose_window_another_run_owns(now: datetime) -> None:
    FunctionRun.objects.create(
        function_id="cron-counter", dispatch_key="cron:counter:2026-03-14T15:05", run_id="inngest-run-1"
    )

    result = tick(now=now)

    assert result.body["summary"] == {"cron-counter": {"skipped": "duplicate-window"}}
    assert not CronRun.objects.exists()
    assert FunctionRun.objects.get().duplicates_suppressed == 1
