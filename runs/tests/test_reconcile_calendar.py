"""The reconciler over calendar jobs, catch-up counted per outage, and the ledger following the registry's changes.

`report` fires at 09:00 Berlin time on weekdays. The cron service last called it on
Thursday 26 March 2026 (08:00 UTC); 29 March is the spring change, so from Monday the
fire time is 07:00 UTC. A window is missed once RECONCILE_CALENDAR_GRACE_SECONDS (300)
have passed since its fire time, not when the window (to the next weekday) ends.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User

from dispatch.models import CronJobState, DispatchWindow
from dispatch.schedule import cron_job_pause
from runs.reconcile import reconcile
from testsupport.event_api import EventAPI

pytestmark = pytest.mark.django_db

COUNT_RUN = "testsupport.crons.count_run"
THU, FRI = datetime(2026, 3, 26, 8, tzinfo=UTC), datetime(2026, 3, 27, 8, tzinfo=UTC)
MON, TUE = datetime(2026, 3, 30, 7, tzinfo=UTC), datetime(2026, 3, 31, 7, tzinfo=UTC)
WED, THU2 = datetime(2026, 4, 1, 7, tzinfo=UTC), datetime(2026, 4, 2, 7, tzinfo=UTC)
GRACE = timedelta(seconds=300)


@pytest.fixture
def register(settings: Any) -> Callable[..., None]:
    settings.RECONCILE_LOOKBACK = "7d"

    def register(**entry: Any) -> None:
        base = {"name": "report", "schedule": "0 9 * * 1-5", "timezone": "Europe/Berlin", "callable": COUNT_RUN}
        settings.CRON_JOBS = [base | entry]

    return register


def ticked(start: datetime, *, job: str = "report", source: str = "cron") -> DispatchWindow:
    """A window the cron service's tick handled."""
    return DispatchWindow.objects.create(
        dispatch_key=f"cron:{job}:{start:%Y-%m-%dT%H:%M}", job=job, status="enqueued", mode="dispatch", source=source,
        correlation_id="tick", window_start=start, window_seconds=86_400, requested_at=start, created_at=start,
        updated_at=start,
    )  # fmt: skip


def recorded(job: str = "report") -> list[tuple[str, str]]:
    windows = DispatchWindow.objects.filter(job=job, source="reconciler").order_by("window_start")
    return list(windows.values_list("dispatch_key", "status"))


def test_reconcile__a_weekday_schedule_expects_no_weekend_window(register: Callable[..., None]) -> None:
    register()
    ticked(THU)

    summary = reconcile(now=TUE + GRACE + timedelta(seconds=1))

    assert recorded() == [
        ("cron:report:2026-03-27T08:00", "missed"),
        ("cron:report:2026-03-30T07:00", "missed"),  # 09:00 CEST after the spring change
        ("cron:report:2026-03-31T07:00", "missed"),
    ]
    assert summary["jobs"]["report"]["through"] == "2026-03-31T07:00:00.000Z"
    windows = DispatchWindow.objects.filter(source="reconciler").order_by("window_start")
    assert [window.window_seconds for window in windows] == [71 * 3600, 24 * 3600, 24 * 3600]


def test_reconcile__a_calendar_window_is_missed_minutes_after_its_fire_time_not_at_its_end(
    register: Callable[..., None],
) -> None:
    register()
    ticked(THU)

    within = reconcile(now=FRI + GRACE - timedelta(seconds=1))
    after = reconcile(now=FRI + GRACE)

    assert (within["missed"], after["missed"]) == (0, 1)
    assert recorded() == [("cron:report:2026-03-27T08:00", "missed")]


def test_reconcile__a_paused_calendar_job_and_an_abandoned_calendar_window(
    register: Callable[..., None], make_staff: Callable[..., User]
) -> None:
    register()
    ticked(THU)
    cron_job_pause(job="report", user=make_staff("operator"), note="quarter close", now=MON - timedelta(hours=2))
    dead = DispatchWindow.objects.create(
        dispatch_key="cron:report:2026-03-31T07:00", job="report", status="pending", mode="inline", source="manual",
        correlation_id="t", window_start=TUE, window_seconds=86_400, requested_at=TUE, created_at=TUE, updated_at=TUE,
    )  # fmt: skip

    summary = reconcile(now=TUE + timedelta(hours=1))

    assert recorded() == [("cron:report:2026-03-27T08:00", "missed"), ("cron:report:2026-03-30T07:00", "paused")]
    dead.refresh_from_db()
    assert (summary["abandonedWindows"], dead.status) == (1, "abandoned")


def test_reconcile__latest_catches_up_one_window_per_outage_however_many_passes_see_it(
    event_api: EventAPI, register: Callable[..., None]
) -> None:
    register(catch_up="latest")
    ticked(THU)

    passes = [reconcile(now=day + timedelta(hours=4)) for day in (FRI, MON, TUE)]
    ticked(WED)  # the cron service is back: the outage is over
    after = reconcile(now=THU2 + timedelta(hours=4))  # and silent again: a new outage

    assert [summary["caughtUp"] for summary in passes] == [1, 0, 0]
    assert after["caughtUp"] == 1
    assert event_api.event_ids() == [
        "cron/report.requested:cron:report:2026-03-27T08:00",
        "cron/report.requested:cron:report:2026-04-02T07:00",
    ]
    assert recorded() == [
        ("cron:report:2026-03-27T08:00", "enqueued"),
        ("cron:report:2026-03-30T07:00", "missed"),
        ("cron:report:2026-03-31T07:00", "missed"),
        ("cron:report:2026-04-02T07:00", "enqueued"),
    ]


def test_reconcile__all_catches_up_at_most_catch_up_max_per_outage(
    event_api: EventAPI, register: Callable[..., None]
) -> None:
    register(catch_up="all", catch_up_max=2)
    ticked(THU)

    passes = [reconcile(now=day + timedelta(hours=4)) for day in (FRI, MON, TUE, WED)]

    assert [summary["caughtUp"] for summary in passes] == [1, 1, 0, 0]
    state = CronJobState.objects.get(job="report")
    assert (state.outage_from, state.outage_caught_up) == (FRI, 2)


def test_reconcile__latest_on_a_fixed_window_outage_seen_by_three_passes_catches_up_one(
    event_api: EventAPI, settings: Any
) -> None:
    settings.CRON_JOBS = [{"name": "counter", "window_seconds": 300, "callable": COUNT_RUN, "catch_up": "latest"}]
    t0 = datetime(2026, 3, 14, 12, tzinfo=UTC)
    ticked(t0, job="counter")

    # A 14-minute outage (no tick from 12:05) seen by passes at 12:15, 12:20 and 12:25.
    passes = [reconcile(now=t0 + timedelta(minutes=minutes)) for minutes in (15, 20, 25)]

    assert [summary["caughtUp"] for summary in passes] == [1, 0, 0]
    assert recorded("counter") == [
        ("cron:counter:2026-03-14T12:05", "enqueued"),
        ("cron:counter:2026-03-14T12:10", "missed"),
        ("cron:counter:2026-03-14T12:15", "missed"),
    ]


def test_reconcile__windows_while_a_job_was_not_registered_are_not_expected(event_api: EventAPI, settings: Any) -> None:
    counter = {"name": "counter", "window_seconds": 300, "callable": COUNT_RUN, "catch_up": "all"}
    settings.CRON_JOBS = [counter]
    t0 = datetime(2026, 3, 14, 12, tzinfo=UTC)
    ticked(t0, job="counter")
    reconcile(now=t0 + timedelta(minutes=5))
    settings.CRON_JOBS = []  # removed for five hours: the reconciler runs meanwhile
    gone = reconcile(now=t0 + timedelta(hours=1))
    settings.CRON_JOBS = [counter]  # and back

    back = reconcile(now=t0 + timedelta(hours=5))
    later = reconcile(now=t0 + timedelta(hours=5, minutes=20))

    assert CronJobState.objects.get(job="counter").schedule_since == t0 + timedelta(hours=5)
    assert (gone["jobs"], back["caughtUp"], back["missed"]) == ({}, 0, 0)
    # Only windows since its return (17:00) are due: none of the five hours it was away.
    assert (later["caughtUp"], later["missed"]) == (3, 0)
    assert event_api.event_ids() == [
        f"cron/counter.requested:cron:counter:2026-03-14T17:{minute:02d}" for minute in (0, 5, 10)
    ]


def test_reconcile__a_longer_window_realigns_instead_of_checking_phantom_windows(settings: Any) -> None:
    settings.CRON_JOBS = [{"name": "counter", "window_seconds": 300, "callable": COUNT_RUN}]
    t0 = datetime(2026, 3, 14, 12, tzinfo=UTC)
    ticked(t0 + timedelta(minutes=50), job="counter")
    reconcile(now=t0 + timedelta(minutes=52))  # the watermark stays before 12:50 (inside its grace)
    reconcile(now=t0 + timedelta(minutes=61))  # through 12:50
    settings.CRON_JOBS = [{"name": "counter", "window_seconds": 3600, "callable": COUNT_RUN}]

    changed = reconcile(now=t0 + timedelta(minutes=62))
    hours_later = reconcile(now=t0 + timedelta(hours=5))

    assert changed["missed"] == 0
    # Hourly windows from the change on (13:02): 14:00 and 15:00 have ended past their grace, on the hour.
    assert hours_later["missed"] == 2
    assert recorded("counter") == [
        ("cron:counter:2026-03-14T14:00", "missed"),
        ("cron:counter:2026-03-14T15:00", "missed"),
    ]


def test_reconcile__a_failed_window_of_the_earlier_schedule_is_republished_as_its_own_window(
    event_api: EventAPI, settings: Any
) -> None:
    settings.CRON_JOBS = [{"name": "counter", "window_seconds": 300, "callable": COUNT_RUN}]
    start = datetime(2026, 3, 14, 12, 5, tzinfo=UTC)
    window = ticked(start, job="counter")
    DispatchWindow.objects.filter(pk=window.pk).update(status="dispatch_failed", window_seconds=300)
    settings.CRON_JOBS = [{"name": "counter", "window_seconds": 3600, "callable": COUNT_RUN}]  # then hourly

    summary = reconcile(now=start + timedelta(minutes=10))

    assert summary["republished"] == 1
    [published] = event_api.events
    assert published["data"]["dispatchKey"] == "cron:counter:2026-03-14T12:05"
    assert published["data"]["dispatchWindowStart"] == "2026-03-14T12:05:00.000Z"  # not the hourly 12:00
