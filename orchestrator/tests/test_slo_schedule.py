"""The report's schedule gates: missed windows, windows stale in pending, abandoned work (default 0: exit 1 when
crossed), and the age of each cron job's last tick."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from freezegun import freeze_time

from dispatch.models import CronJobState, DispatchWindow
from dispatch.windows import stale_after
from orchestrator.slo import slo_report_build
from runs.models import FunctionRun

pytestmark = pytest.mark.django_db

Window = Callable[..., DispatchWindow]
SECRET = "status-secret"


def report(now: datetime) -> dict[str, Any]:
    body: dict[str, Any] = slo_report_build(since=now - timedelta(hours=24), now=now).as_json()
    return body


def command(now: datetime) -> tuple[int, dict[str, Any]]:
    out = StringIO()
    with freeze_time(now):
        try:
            call_command("orchestrator_report", "--json", stdout=out)
        except SystemExit as exit_:
            return int(str(exit_.code)), json.loads(out.getvalue())
    return 0, json.loads(out.getvalue())


def test_orchestrator_report__a_missed_window_crosses_its_gate_and_exits_1(now: datetime, make_window: Window) -> None:
    make_window(status="missed", mode="", source="reconciler", publish_attempts=0)
    make_window(status="paused", mode="paused", source="cron", publish_attempts=0)

    code, body = command(now)

    assert (code, body["failed"]) == (1, ["missedWindows"])
    missed = body["metrics"]["missedWindows"]
    assert (missed["value"], missed["threshold"], missed["setting"], missed["pausedWindows"]) == (
        1,
        0,
        "SLO_MAX_MISSED_WINDOWS",
        1,
    )


def test_status__shows_the_schedule_gates(client: Client, settings: Any, make_window: Window) -> None:
    settings.CRON_SECRET = SECRET
    settings.SLO_MAX_MISSED_WINDOWS = 5
    make_window(status="missed", mode="", source="reconciler", publish_attempts=0, created_at=timezone.now())

    body = client.get("/api/status", headers={"Authorization": f"Bearer {SECRET}"}).json()

    metrics = body["metrics"]
    assert (metrics["missedWindows"]["value"], metrics["missedWindows"]["pass"], body["pass"]) == (1, True, True)
    assert {"stalePending", "abandonedRuns", "lastTickAgeSeconds"} <= set(metrics)


def test_slo_report__a_window_stale_in_pending_is_a_gate_and_an_enqueue_failure(
    now: datetime, make_window: Window
) -> None:
    make_window(status="pending", publish_attempts=1)  # publishing right now: neither
    make_window(status="pending", publish_attempts=2, created_at=now - stale_after("dispatch") - timedelta(seconds=1))
    make_window(status="pending", mode="inline", publish_attempts=0, created_at=now - timedelta(hours=30))
    make_window(publish_attempts=1)  # enqueued at the first attempt

    body = report(now)

    stale = body["metrics"]["stalePending"]
    assert (stale["value"], stale["pass"], stale["oldestPendingSince"]) == (2, False, "2026-03-13T09:09:26.500Z")
    rate = body["metrics"]["enqueueFailureRate"]
    assert (rate["publishAttempts"], rate["failedAttempts"]) == (3, 2)  # the dead tick's 2 attempts failed
    assert set(body["failed"]) == {"stalePending", "enqueueFailureRate"}


def test_slo_report__abandoned_runs_and_windows_cross_their_gate(
    now: datetime, make_window: Window, make_run: Callable[..., FunctionRun]
) -> None:
    reason = "abandoned: no progress since 2026-03-14T13:00:00.000Z"
    make_run(status="failed", terminal_reason=reason, finished_at=now - timedelta(hours=1))
    make_run(status="failed", terminal_reason="retries exhausted (4) in step run", finished_at=now)
    make_window(status="abandoned", mode="inline", publish_attempts=0)

    body = report(now)

    abandoned = body["metrics"]["abandonedRuns"]
    assert (abandoned["value"], abandoned["runs"], abandoned["windows"], abandoned["pass"]) == (2, 1, 1, False)
    assert body["failed"] == ["abandonedRuns"]


def test_slo_report__the_age_of_each_cron_jobs_last_tick(now: datetime, make_window: Window) -> None:
    make_window(job="counter", created_at=now - timedelta(minutes=12))
    make_window(job="counter", created_at=now - timedelta(minutes=2), source="manual")  # not the cron service's
    make_window(job="counter", status="missed", mode="", source="reconciler", publish_attempts=0)  # nor this
    make_window(job="background-jobs", created_at=now - timedelta(seconds=30))

    last = report(now)["metrics"]["lastTickAgeSeconds"]

    assert (last["value"], last["pass"]) == (720.0, None)  # informational
    assert (last["jobs"]["counter"], last["jobs"]["background-jobs"], last["jobs"]["crash"]) == (720.0, 30.0, None)


def test_orchestrator_report__tick_lateness_p95_over_its_gate_stops_the_rollout(
    now: datetime, make_window: Window, settings: Any
) -> None:
    for lateness_ms in [1_000] * 18 + [45_000, 50_000]:
        make_window(lateness_ms=lateness_ms)
    make_window(source="manual")  # an operator's tick has no lateness: not counted
    CronJobState.objects.create(job="counter", drift_ticks=3, last_drift_at=now - timedelta(minutes=5))

    passed, _ = command(now)  # the default gate: 60 s
    settings.SLO_MAX_TICK_LATENESS_SECONDS = 30
    code, body = command(now)

    assert (passed, code, body["failed"]) == (0, 1, ["tickLatenessP95Seconds"])
    assert body["metrics"]["tickLatenessP95Seconds"] == {
        "value": 45.0,
        "unit": "s",
        "threshold": 30.0,
        "pass": False,
        "setting": "SLO_MAX_TICK_LATENESS_SECONDS",
        "windows": 20,
        "maxSeconds": 50.0,
        "driftingJobs": {"counter": 3},
    }
