"""The reconciler's schedule ledger: every window that has ended has a row; catch-up as each job's policy says.

`counter` has 5-minute windows, so its grace is one window (5 minutes). Its first
cron-sourced window starts at T0; with no tick after it, `now` = T0 + 12 windows + 30 s
leaves ten windows (T0+5m … T0+50m) ended past their grace and without a row.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User

from dispatch.models import CronJobState, DispatchWindow
from dispatch.registry import get_cron_job
from dispatch.schedule import cron_job_pause, cron_job_resume
from dispatch.services import dispatch_tick
from runs.reconcile import reconcile
from testsupport.event_api import EventAPI
from testsupport.models import CronRun

pytestmark = pytest.mark.django_db

T0 = datetime.fromisoformat("2026-03-14T12:00:00+00:00")
WINDOW = timedelta(minutes=5)
NOW = T0 + 12 * WINDOW + timedelta(seconds=30)
MISSING = [T0 + n * WINDOW for n in range(1, 11)]
COUNT_RUN = "testsupport.crons.count_run"


def key(start: datetime) -> str:
    return f"cron:counter:{start:%Y-%m-%dT%H:%M}"


def cron_window(start: datetime, *, job: str = "counter", source: str = "cron", seconds: int = 300) -> DispatchWindow:
    """A window a tick handled: enqueued, as the cron service's tick left it."""
    return DispatchWindow.objects.create(
        dispatch_key=f"cron:{job}:{start:%Y-%m-%dT%H:%M}", job=job, status="enqueued", mode="dispatch",
        source=source, correlation_id="tick", window_start=start, window_seconds=seconds, requested_at=start,
        created_at=start, updated_at=start,
    )  # fmt: skip


@pytest.fixture
def counter_catches_up(settings: Any) -> Callable[..., None]:
    """Register `counter` with a catch-up policy (and nothing else beside background-jobs)."""

    def register(policy: str, **extra: Any) -> None:
        entry = {"name": "counter", "window_seconds": 300, "callable": COUNT_RUN, "catch_up": policy, **extra}
        settings.CRON_JOBS = [entry]

    return register


def rows(**filters: Any) -> list[tuple[str, str, str, str]]:
    windows = DispatchWindow.objects.filter(job="counter", **filters).order_by("window_start")
    return list(windows.values_list("dispatch_key", "status", "mode", "source"))


def test_reconcile__under_skip_ten_windows_without_a_tick_are_ten_missed_rows() -> None:
    cron_window(T0)

    summary = reconcile(now=NOW)
    again = reconcile(now=NOW + timedelta(seconds=10))

    assert rows(source="reconciler") == [(key(start), "missed", "", "reconciler") for start in MISSING]
    assert (summary["missed"], summary["caughtUp"], summary["jobs"]["counter"]) == (
        10,
        0,
        {"missed": 10, "paused": 0, "caughtUp": [], "through": "2026-03-14T12:50:00.000Z"},
    )
    assert set(DispatchWindow.objects.filter(status="missed").values_list("correlation_id", flat=True)) == {
        summary["correlationId"]
    }
    assert (again["missed"], again["jobs"]) == (0, {})  # the watermark moved: nothing is counted twice
    assert CronJobState.objects.get(job="counter").reconciled_through == MISSING[-1]
    assert not CronRun.objects.exists()


def test_reconcile__under_latest_the_most_recent_window_is_dispatched_like_a_tick_and_a_late_tick_is_a_duplicate(
    event_api: EventAPI, counter_catches_up: Callable[..., None]
) -> None:
    counter_catches_up("latest")
    cron_window(T0)

    summary = reconcile(now=NOW)
    job = get_cron_job("counter")
    assert job is not None
    late = dispatch_tick(job=job, now=NOW, at=MISSING[-1], source="cron", correlation_id="late-tick")

    caught = key(MISSING[-1])
    assert (summary["missed"], summary["caughtUp"], summary["jobs"]["counter"]["caughtUp"]) == (9, 1, [caught])
    assert rows(source="reconciler") == [
        *((key(start), "missed", "", "reconciler") for start in MISSING[:-1]),
        (caught, "enqueued", "dispatch", "reconciler"),
    ]
    assert event_api.event_ids() == [f"cron/counter.requested:{caught}"]  # the tick's own deterministic id
    [event] = event_api.events
    assert (event["data"]["dispatchKey"], event["data"]["source"], event["data"]["dispatchWindowStart"]) == (
        caught,
        "reconciler",
        "2026-03-14T12:50:00.000Z",
    )
    assert (late.status_code, late.body["duplicate"], late.body["eventIds"]) == (
        200,
        True,
        [f"cron/counter.requested:{caught}"],
    )
    assert len(event_api.events) == 1  # the late tick published nothing


def test_reconcile__under_all_the_most_recent_catch_up_max_windows_are_dispatched(
    event_api: EventAPI, counter_catches_up: Callable[..., None]
) -> None:
    counter_catches_up("all", catch_up_max=3)
    cron_window(T0)

    summary = reconcile(now=NOW)

    assert (summary["missed"], summary["caughtUp"], summary["notCaughtUp"]) == (7, 3, 0)
    assert rows(source="reconciler") == [
        *((key(start), "missed", "", "reconciler") for start in MISSING[:7]),
        *((key(start), "enqueued", "dispatch", "reconciler") for start in MISSING[7:]),
    ]
    assert event_api.event_ids() == [f"cron/counter.requested:{key(start)}" for start in MISSING[7:]]  # oldest first
    assert not CronRun.objects.exists()  # the work runs in Inngest, never inside the reconciler


def test_reconcile__a_failed_catch_up_publish_stops_the_jobs_catch_up_until_the_next_pass(
    event_api: EventAPI, counter_catches_up: Callable[..., None]
) -> None:
    counter_catches_up("all", catch_up_max=3)
    cron_window(T0)
    event_api.behave("unauthorized")

    first = reconcile(now=NOW)
    event_api.behave("ok")
    second = reconcile(now=NOW + timedelta(seconds=1))

    # The first pass tried one window: the next two would have waited out the publish bound to fail the same way.
    assert first["jobs"]["counter"]["through"] == "2026-03-14T12:40:00.000Z"
    assert (first["missed"], first["caughtUp"]) == (7, 0)
    assert second["caughtUp"] == 2
    assert (
        rows(source="reconciler")
        == [
            *((key(start), "missed", "", "reconciler") for start in MISSING[:7]),
            (key(MISSING[7]), "dispatch_failed", "dispatch", "reconciler"),  # re-published with backoff, later
            *((key(start), "enqueued", "dispatch", "reconciler") for start in MISSING[8:]),
        ]
    )
    assert event_api.requests == 3


def test_reconcile__a_window_inside_its_grace_is_not_missed_yet_and_a_ticked_one_never() -> None:
    cron_window(T0)
    cron_window(MISSING[4])  # the cron service called for T0+25m

    summary = reconcile(now=T0 + 3 * WINDOW - timedelta(seconds=1))  # T0+5m ended 4m59s ago: inside its grace
    later = reconcile(now=NOW)

    assert (summary["missed"], later["missed"]) == (0, 9)
    assert key(MISSING[4]) not in {row[0] for row in rows(source="reconciler")}


def test_reconcile__never_looks_before_the_lookback_nor_the_first_cron_window(settings: Any) -> None:
    settings.RECONCILE_LOOKBACK = "30m"
    cron_window(T0 - timedelta(days=3), source="manual")  # an old manual back-fill starts nothing
    cron_window(T0)

    summary = reconcile(now=NOW)

    # Only windows starting in the last 30 minutes (from T0+35m) are looked at.
    assert rows(source="reconciler") == [(key(start), "missed", "", "reconciler") for start in MISSING[6:]]
    assert summary["missed"] == 4


def test_reconcile__a_job_the_cron_service_never_called_has_no_windows_due() -> None:
    cron_window(T0, source="manual")

    summary = reconcile(now=NOW)

    assert (summary["missed"], summary["jobs"]) == (0, {})
    assert CronJobState.objects.get(job="counter").first_cron_window is None


def test_reconcile__a_paused_jobs_windows_are_paused_not_missed_nor_caught_up(
    event_api: EventAPI, make_staff: Callable[..., User], counter_catches_up: Callable[..., None]
) -> None:
    counter_catches_up("all")
    operator = make_staff("operator")
    cron_window(T0)
    cron_job_pause(job="counter", user=operator, note="supplier API down", now=T0 + 5 * WINDOW + timedelta(seconds=5))

    paused = reconcile(now=NOW)
    cron_job_resume(job="counter", user=operator, now=NOW)
    cron_window(T0 + 13 * WINDOW)
    resumed = reconcile(now=T0 + 16 * WINDOW)

    assert (paused["missed"], paused["paused"], paused["caughtUp"]) == (4, 6, 0)  # T0+5m..20m missed, then paused
    assert rows(source="reconciler", status="paused") == [
        (key(start), "paused", "paused", "reconciler") for start in [*MISSING[4:], T0 + 11 * WINDOW, T0 + 12 * WINDOW]
    ]
    # Resumed at T0+60m30s: T0+55m and T0+60m fell in the pause; T0+70m has no tick and is caught up.
    assert (resumed["missed"], resumed["paused"], resumed["caughtUp"]) == (0, 2, 1)
    assert event_api.event_ids() == [f"cron/counter.requested:{key(T0 + 14 * WINDOW)}"]


def test_reconcile__background_jobs_skips_by_default(now: datetime) -> None:
    start = now.replace(second=0, microsecond=0)
    cron_window(start, job="background-jobs", seconds=60)

    summary = reconcile(now=start + timedelta(minutes=5, seconds=1))

    assert summary["jobs"]["background-jobs"]["missed"] == 3  # +1m, +2m, +3m; +4m is inside its 60 s grace
    assert DispatchWindow.objects.filter(job="background-jobs", status="missed").count() == 3


@pytest.mark.parametrize("flags", [{}, {"CRON_COUNTER_USE_INNGEST": False}], ids=["no-event-key", "rollback-lever"])
def test_reconcile__a_window_to_catch_up_whose_job_runs_inline_is_recorded_missed_not_run(
    event_api: EventAPI, settings: Any, counter_catches_up: Callable[..., None], flags: dict[str, bool]
) -> None:
    counter_catches_up("all", catch_up_max=3)
    settings.DISPATCH_FLAGS = flags
    if not flags:
        settings.INNGEST_EVENT_KEY = ""
    cron_window(T0)

    summary = reconcile(now=NOW)

    assert rows(source="reconciler") == [(key(start), "missed", "", "reconciler") for start in MISSING]
    errors = dict(DispatchWindow.objects.filter(job="counter", error__gt="").values_list("dispatch_key", "error"))
    assert sorted(errors) == [key(start) for start in MISSING[7:]]
    assert errors[key(MISSING[-1])].startswith("not caught up: counter runs inline (")
    assert errors[key(MISSING[-1])].endswith(
        "); the reconciler only publishes. Run it by hand: python manage.py dispatch_tick counter --at "
        "2026-03-14T12:50:00.000Z"
    )
    assert not CronRun.objects.exists()
    assert (summary["missed"], summary["caughtUp"], summary["notCaughtUp"]) == (10, 0, 3)
    assert summary["jobs"]["counter"] == {
        "missed": 10,
        "paused": 0,
        "caughtUp": [],
        "notCaughtUp": 3,
        "through": "2026-03-14T12:50:00.000Z",
    }
    again = reconcile(now=NOW + WINDOW)
    # Only T0+55m, whose grace has passed since: the same outage, whose budget (3) the policy has spent.
    assert (again["missed"], again["notCaughtUp"]) == (1, 0)
    assert event_api.requests == 0
