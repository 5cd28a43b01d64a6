from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest

from dispatch.models import DispatchWindow
from jobs.models import BackgroundJob, QueueHealthSnapshot
from orchestrator.slo import parse_period, slo_report_build
from runs.models import DeadLetter, FunctionRun

pytestmark = pytest.mark.django_db

Window = Callable[..., DispatchWindow]
Run = Callable[..., FunctionRun]
DAY = timedelta(days=1)


def report(now: datetime, period: timedelta = DAY) -> dict[str, Any]:
    body: dict[str, Any] = slo_report_build(since=now - period, now=now).as_json()
    return body


def test_slo_report__an_empty_period_passes_with_no_data(now: datetime) -> None:
    body = report(now)

    assert (body["pass"], body["failed"]) == (True, [])
    assert (body["since"], body["now"], body["periodSeconds"]) == (
        "2026-03-13T15:09:26.500Z",
        "2026-03-14T15:09:26.500Z",
        86400,
    )
    metrics = body["metrics"]
    assert list(metrics) == [
        "dispatchLatencyP50Ms",
        "dispatchLatencyP95Ms",
        "dispatchLatencyP99Ms",
        "enqueueFailureRate",
        "duplicateRuns",
        "manualReruns",
        "suppressedDuplicates",
        "backlog",
        "queueLagSeconds",
        "peakQueueLagSeconds",
        "queueLagGrowthSeconds",
        "unresolvedDeadLetters",
        "missedWindows",
        "stalePending",
        "abandonedRuns",
        "tickLatenessP95Seconds",
        "lastTickAgeSeconds",
    ]
    assert metrics["dispatchLatencyP95Ms"]["value"] is None
    assert metrics["enqueueFailureRate"]["value"] is None
    assert (metrics["duplicateRuns"]["value"], metrics["queueLagSeconds"]["value"]) == (0, 0.0)


def test_slo_report__dispatch_latency_percentiles_over_the_periods_dispatches(
    now: datetime, make_window: Window
) -> None:
    for latency in range(10, 201, 10):  # 20 dispatches: 10, 20, ... 200 ms
        make_window(latency_ms=latency, created_at=now - timedelta(hours=1))
    make_window(latency_ms=150, status="dispatch_failed")  # A failed dispatch counts too.
    make_window(latency_ms=9000, mode="inline", status="inline")  # Inline runs are not dispatch latency.
    make_window(latency_ms=9000, mode="inline-fallback", status="inline")
    make_window(latency_ms=9000, created_at=now - DAY - timedelta(seconds=1))  # Before the period.
    make_window(latency_ms=None, status="pending")  # Still publishing.

    metrics = report(now)["metrics"]

    assert [metrics[f"dispatchLatencyP{p}Ms"]["value"] for p in (50, 95, 99)] == [110, 190, 200]
    assert metrics["dispatchLatencyP95Ms"]["windows"] == 21
    assert (metrics["dispatchLatencyP95Ms"]["threshold"], metrics["dispatchLatencyP95Ms"]["pass"]) == (2000.0, True)
    assert metrics["dispatchLatencyP50Ms"]["pass"] is None  # Informational: only p95 is a gate.


def test_slo_report__p95_over_its_gate_fails(now: datetime, make_window: Window, settings: Any) -> None:
    settings.SLO_DISPATCH_P95_MS = 150
    for latency in range(10, 201, 10):
        make_window(latency_ms=latency)

    body = report(now)

    assert (body["pass"], body["failed"]) == (False, ["dispatchLatencyP95Ms"])
    assert body["metrics"]["dispatchLatencyP95Ms"]["value"] == 190


def test_slo_report__enqueue_failure_rate_counts_failed_attempts(now: datetime, make_window: Window) -> None:
    make_window(publish_attempts=1)  # 1 attempt, it succeeded.
    make_window(publish_attempts=1)
    make_window(publish_attempts=2)  # The second attempt succeeded: 1 failure.
    make_window(publish_attempts=3, status="dispatch_failed")  # 3 failures (a failed publish keeps mode dispatch).
    make_window(publish_attempts=2, status="inline", mode="inline-fallback")  # 2 failures, then inline.
    make_window(publish_attempts=1, status="pending")  # Publishing right now: left out.
    make_window(publish_attempts=0, status="inline", mode="inline")  # Never published.
    make_window(publish_attempts=5, status="dispatch_failed", created_at=now - DAY - timedelta(minutes=1))

    body = report(now)

    rate = body["metrics"]["enqueueFailureRate"]
    assert (rate["publishAttempts"], rate["failedAttempts"], rate["value"]) == (9, 6, round(6 / 9, 6))
    assert (rate["threshold"], rate["pass"]) == (0.01, False)
    assert body["failed"] == ["enqueueFailureRate"]


def test_slo_report__enqueue_failure_rate_at_its_gate_passes(now: datetime, make_window: Window) -> None:
    for _ in range(98):
        make_window(publish_attempts=1)
    make_window(publish_attempts=2)  # 1 failed attempt out of 100: exactly the 1 % gate.

    rate = report(now)["metrics"]["enqueueFailureRate"]

    assert (rate["value"], rate["pass"]) == (0.01, True)


def test_slo_report__a_forced_rerun_is_reported_not_gated(now: datetime, make_run: Run) -> None:
    window = "cron:background-jobs:2026-03-14T15:00"
    make_run(dispatch_key=window)
    make_run(dispatch_key=f"{window}:manual-0a1b2c3d")  # `dispatch_tick --force` re-ran the window...
    make_run(dispatch_key=f"{window}:manual-deadbeef")  # ...twice: 2 manual re-runs.
    make_run(dispatch_key=window, function_id="background-maintenance")  # Another function: not re-run.
    retried = "cron:background-jobs:2026-03-14T15:02"
    make_run(dispatch_key=retried, status="failed", terminal_reason="retries exhausted (4) in step run")
    make_run(dispatch_key=f"{retried}:manual-12345678")  # A requeued dead letter's re-run: a retry.
    old = "cron:background-jobs:2026-03-12T15:00"
    make_run(dispatch_key=old, started_at=now - 2 * DAY)
    make_run(dispatch_key=f"{old}:manual-00000000", started_at=now - 2 * DAY)  # Before the period.

    body = report(now)

    manual, duplicates = body["metrics"]["manualReruns"], body["metrics"]["duplicateRuns"]
    assert (manual["value"], manual["windows"], manual["threshold"], manual["pass"]) == (2, 1, None, None)
    assert (duplicates["value"], duplicates["windowsWithDuplicates"], duplicates["pass"]) == (0, 0, True)
    assert (body["pass"], body["failed"]) == (True, [])


def test_slo_report__a_window_run_again_under_a_made_up_key_crosses_the_gate(now: datetime, make_run: Run) -> None:
    window = "cron:background-jobs:2026-03-14T15:00"
    make_run(dispatch_key=window)
    make_run(dispatch_key=f"{window}:again-1")  # A key no tick makes ran the window a second time...
    make_run(dispatch_key=f"{window}:again-2")  # ...and a third: 2 duplicate runs.
    make_run(dispatch_key=f"{window}:manual-0a1b2c3d")  # A forced re-run beside them: reported apart.
    make_run(dispatch_key="cron:background-jobs:2026-03-14T15:01:manual-XYZ")  # Not a manual suffix, its window
    make_run(dispatch_key="cron:background-jobs:2026-03-14T15:01")  # ran twice: 1 more.
    make_run(dispatch_key="cron:background-jobs:2026-03-14T15:02:again-1")  # Alone in its window: nothing yet.
    failed = "cron:background-jobs:2026-03-14T15:03"
    make_run(dispatch_key=failed)
    make_run(dispatch_key=f"{failed}:again-1", status="failed", terminal_reason="non-retriable error")  # No work.

    body = report(now)

    duplicates = body["metrics"]["duplicateRuns"]
    assert (duplicates["value"], duplicates["windowsWithDuplicates"], duplicates["pass"]) == (3, 2, False)
    assert body["metrics"]["manualReruns"]["value"] == 1
    assert body["failed"] == ["duplicateRuns"]


def test_slo_report__suppressed_duplicates_are_informational(now: datetime, make_run: Run, make_window: Window) -> None:
    make_run(duplicates_suppressed=2)
    make_run(duplicates_suppressed=3)
    make_run(duplicates_suppressed=7, started_at=now - 2 * DAY)
    make_window(duplicate_ticks=4)
    make_window(duplicate_ticks=1)

    body = report(now)

    suppressed = body["metrics"]["suppressedDuplicates"]
    assert (suppressed["value"], suppressed["duplicateTicks"], suppressed["pass"]) == (5, 5, None)
    assert body["pass"] is True


def _snapshot(taken_at: datetime, *, lag: float, ready: int = 0) -> None:
    QueueHealthSnapshot.objects.create(
        taken_at=taken_at, pending=ready, ready=ready, running=0, dead=0, lag_seconds=lag, unresolved_dead_letters=0
    )


def test_slo_report__backlog_lag_now_and_over_the_period(now: datetime, make_job: Callable[..., BackgroundJob]) -> None:
    make_job(run_after=now - timedelta(seconds=120))
    make_job(run_after=now - timedelta(seconds=30))
    make_job(run_after=now + timedelta(minutes=5))  # Scheduled, not due: not backlog.
    _snapshot(now - DAY - timedelta(minutes=1), lag=1000, ready=50)  # Before the period.
    _snapshot(now - timedelta(hours=20), lag=10, ready=1)
    _snapshot(now - timedelta(hours=10), lag=400, ready=9)  # A breach between two reports.
    _snapshot(now - timedelta(hours=1), lag=60, ready=3)

    body = report(now)

    metrics = body["metrics"]
    assert (metrics["backlog"]["value"], metrics["backlog"]["pending"], metrics["backlog"]["growth"]) == (2, 3, 1)
    assert (metrics["queueLagSeconds"]["value"], metrics["queueLagSeconds"]["pass"]) == (120.0, True)
    peak = metrics["peakQueueLagSeconds"]
    assert (peak["value"], peak["snapshots"], peak["threshold"], peak["pass"]) == (400.0, 3, 300.0, False)
    growth = metrics["queueLagGrowthSeconds"]
    assert (growth["value"], growth["fromLagSeconds"], growth["fromTakenAt"]) == (
        110.0,
        10.0,
        "2026-03-13T19:09:26.500Z",
    )
    assert body["failed"] == ["peakQueueLagSeconds"]


def test_slo_report__lag_now_over_its_gate_fails_both_lag_gates(
    now: datetime, make_job: Callable[..., BackgroundJob]
) -> None:
    make_job(run_after=now - timedelta(seconds=301))

    body = report(now)

    assert body["failed"] == ["queueLagSeconds", "peakQueueLagSeconds"]
    assert body["metrics"]["queueLagGrowthSeconds"]["value"] is None  # No snapshot yet to grow from.


def test_slo_report__unresolved_dead_letters(now: datetime, make_job: Callable[..., BackgroundJob]) -> None:
    for age, resolved in [(timedelta(hours=1), False), (3 * DAY, False), (timedelta(hours=2), True)]:
        DeadLetter.objects.create(
            source="job",
            job=make_job(status="dead"),
            kind="test.fail",
            created_at=now - age,
            resolved_at=now if resolved else None,
            resolution="resolved" if resolved else "",
        )

    letters = report(now)["metrics"]["unresolvedDeadLetters"]

    assert (letters["value"], letters["createdInPeriod"], letters["pass"]) == (2, 2, None)


@pytest.mark.parametrize(
    ("text", "period"),
    [("90s", timedelta(seconds=90)), ("15m", timedelta(minutes=15)), ("24h", DAY), (" 7d ", 7 * DAY)],
)
def test_parse_period__accepts_a_number_and_a_unit(text: str, period: timedelta) -> None:
    assert parse_period(text) == period


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("24", "e.g. 15m, 24h or 7d"),
        ("0h", "e.g. 15m, 24h or 7d"),
        ("1w", "e.g. 15m, 24h or 7d"),
        ("367d", "longer than 366d"),
    ],
)
def test_parse_period__refuses_what_it_cannot_read(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_period(text)
