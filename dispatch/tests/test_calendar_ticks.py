"""Ticks of calendar jobs: the window is the fire time the tick was meant for; lateness and drift are recorded.

`report` fires at 09:00 Berlin time on weekdays: 08:00 UTC until 29 March 2026, 07:00 UTC
after. 27 March 2026 is a Friday, so its window runs to Monday's fire time.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from freezegun import freeze_time

from dispatch import keys
from dispatch.models import CronJobState, DispatchWindow
from dispatch.registry import get_cron_job
from dispatch.services import TickResult, dispatch_tick
from testsupport.event_api import EventAPI

pytestmark = pytest.mark.django_db

COUNT_RUN = "testsupport.crons.count_run"
FRIDAY_FIRE = datetime(2026, 3, 27, 8, 0, tzinfo=UTC)
MONDAY_FIRE = datetime(2026, 3, 30, 7, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def calendar_jobs(settings: Any) -> None:
    settings.CRON_JOBS = [
        {"name": "report", "schedule": "0 9 * * 1-5", "timezone": "Europe/Berlin", "callable": COUNT_RUN},
        {"name": "nightly", "schedule": "30 2 * * *", "timezone": "Europe/Berlin", "callable": COUNT_RUN},
        {"name": "counter", "window_seconds": 300, "callable": COUNT_RUN},
    ]


def tick(job: str, now: datetime, **kwargs: Any) -> TickResult:
    cron_job = get_cron_job(job)
    assert cron_job is not None
    return dispatch_tick(job=cron_job, now=now, source=kwargs.pop("source", "cron"), correlation_id="c", **kwargs)


def test_dispatch_tick__a_calendar_tick_claims_its_fire_time_and_the_window_runs_to_the_next(
    event_api: EventAPI,
) -> None:
    result = tick("report", FRIDAY_FIRE + timedelta(seconds=4, milliseconds=250))

    assert result.status_code == 202
    body = result.body
    assert (body["dispatchKey"], body["dispatchWindowStart"], body["dispatchWindowSeconds"]) == (
        "cron:report:2026-03-27T08:00",
        "2026-03-27T08:00:00.000Z",
        (MONDAY_FIRE - FRIDAY_FIRE) // timedelta(seconds=1),  # the weekend, and the spring change: 71 h
    )
    [event] = event_api.events
    assert (event["id"], event["data"]["dispatchWindowStart"], event["data"]["dispatchWindowSeconds"]) == (
        "cron/report.requested:cron:report:2026-03-27T08:00",
        "2026-03-27T08:00:00.000Z",
        71 * 3600,
    )
    window = DispatchWindow.objects.get()
    assert (window.window_start, window.window_seconds, window.lateness_ms) == (FRIDAY_FIRE, 71 * 3600, 4250)


def test_dispatch_tick__a_tick_up_to_the_tolerance_early_belongs_to_the_coming_fire_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING, logger="dispatch.services"):
        early = tick("report", FRIDAY_FIRE - timedelta(seconds=30))
        late = tick("report", FRIDAY_FIRE + timedelta(hours=3))  # the same window: a duplicate

    assert (early.body["dispatchKey"], early.body["duplicate"]) == ("cron:report:2026-03-27T08:00", False)
    assert (late.body["dispatchKey"], late.body["duplicate"]) == ("cron:report:2026-03-27T08:00", True)
    assert DispatchWindow.objects.get().lateness_ms == -30_000
    # Three hours after its fire time is off the schedule: logged and counted as drift; 30 s early is not.
    [line] = [record for record in caplog.records if getattr(record, "action", "") == "cron_drift"]
    assert (line.job, line.driftSeconds) == ("report", 3 * 3600.0)  # type: ignore[attr-defined]
    assert CronJobState.objects.values_list("job", "drift_ticks").get() == ("report", 1)


def test_dispatch_tick__a_tick_just_past_the_tolerance_early_is_the_last_fire_times_and_drift() -> None:
    result = tick("report", FRIDAY_FIRE - timedelta(seconds=31))

    assert result.body["dispatchKey"] == "cron:report:2026-03-26T08:00"  # Thursday's window, a day late
    assert CronJobState.objects.get(job="report").drift_ticks == 1
    assert DispatchWindow.objects.get().lateness_ms == (timedelta(days=1) - timedelta(seconds=31)) // timedelta(
        milliseconds=1
    )


@pytest.mark.parametrize(
    ("moment", "key", "seconds"),
    [
        # 02:30 does not exist on 29 March: the window opens at 03:00 CEST (01:00 UTC) and lasts 23.5 h.
        ("2026-03-29T01:00:02", "cron:nightly:2026-03-29T01:00", 23 * 3600 + 1800),
        # 02:30 comes twice on 25 October: the window opens at the first (CEST, 00:30 UTC) and lasts 25 h.
        ("2026-10-25T00:30:02", "cron:nightly:2026-10-25T00:30", 25 * 3600),
    ],
)
def test_dispatch_tick__the_dst_changes_make_one_window_each(moment: str, key: str, seconds: int) -> None:
    result = tick("nightly", datetime.fromisoformat(moment + "+00:00"))

    assert (result.body["dispatchKey"], result.body["dispatchWindowSeconds"]) == (key, seconds)


def test_dispatch_tick__the_repeated_local_time_runs_once_a_cron_service_firing_at_both_is_drift() -> None:
    first = tick("nightly", datetime(2026, 10, 25, 0, 30, 1, tzinfo=UTC))  # 02:30 CEST
    second = tick("nightly", datetime(2026, 10, 25, 1, 30, 1, tzinfo=UTC))  # 02:30 CET, an hour later

    assert (first.body["duplicate"], second.body["duplicate"]) == (False, True)
    assert second.body["dispatchKey"] == first.body["dispatchKey"] == "cron:nightly:2026-10-25T00:30"
    assert CronJobState.objects.get(job="nightly").drift_ticks == 1


def test_dispatch_tick__a_fixed_window_job_keeps_its_windows_and_counts_a_tick_off_its_schedule() -> None:
    start = datetime(2026, 3, 14, 15, 5, tzinfo=UTC)

    on_time = tick("counter", start + timedelta(seconds=3))
    early = tick("counter", start + timedelta(minutes=5) - timedelta(seconds=10))  # not the next window's: floored
    off = tick("counter", start + timedelta(minutes=2))  # a cron service calling every minute

    assert [result.body["dispatchKey"] for result in (on_time, early, off)] == ["cron:counter:2026-03-14T15:05"] * 3
    assert DispatchWindow.objects.get().lateness_ms == 3000
    assert CronJobState.objects.get(job="counter").drift_ticks == 1


def test_dispatch_tick__an_operators_tick_records_no_lateness_and_no_drift() -> None:
    result = tick("report", FRIDAY_FIRE + timedelta(hours=5), source="manual")

    assert result.body["dispatchKey"] == "cron:report:2026-03-27T08:00"
    assert DispatchWindow.objects.get().lateness_ms is None
    assert not CronJobState.objects.exists()


@freeze_time("2026-03-27T09:00:00Z")
def test_dispatch_tick_command__at_follows_the_same_rule() -> None:
    out = StringIO()
    call_command("dispatch_tick", "report", "--at", "2026-03-27T07:59:45Z", "--json", stdout=out)

    body = json.loads(out.getvalue())
    assert (body["dispatchKey"], body["dispatchWindowStart"]) == (
        "cron:report:2026-03-27T08:00",
        "2026-03-27T08:00:00.000Z",
    )
    assert DispatchWindow.objects.values_list("source", "lateness_ms").get() == ("manual", None)


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("cron:report:2026-03-27T08:00", ""),  # Friday's window: the current one
        ("cron:report:2026-03-30T07:00", ""),  # Monday's: the next one (a cron service's clock ahead)
        ("cron:report:2026-03-27T08:00:manual-0a1b2c3d", ""),  # a forced tick of Friday's window
        ("cron:report:2026-03-31T07:00", "names a window that has not started yet (more than one window ahead)"),
        # No fire time: a weekend day, a minute past, and Monday at 08:00 UTC (09:00 CET: the clocks changed).
        ("cron:report:2026-03-28T08:00", "names 2026-03-28T08:00 UTC, where no window of cron job 'report' starts"),
        ("cron:report:2026-03-27T08:01", "names 2026-03-27T08:01 UTC, where no window of cron job 'report' starts"),
        ("cron:report:2026-03-30T08:00", "names 2026-03-30T08:00 UTC, where no window of cron job 'report' starts"),
    ],
)
def test_window_problem__a_calendar_jobs_windows_start_at_its_fire_times(key: str, problem: str) -> None:
    job = get_cron_job("report")
    assert job is not None

    assert keys.window_problem(key, job=job, now=FRIDAY_FIRE + timedelta(hours=30)) == problem


def test_dispatch_tick__trigger_now_on_a_calendar_job_runs_its_current_window_under_a_one_off_key() -> None:
    result = tick("report", MONDAY_FIRE - timedelta(hours=2), source="manual", force=True)

    body = result.body
    assert body["dispatchKey"].startswith("cron:report:2026-03-27T08:00:manual-")  # Friday's window, still current
    assert (body["dispatchWindowStart"], body["dispatchWindowSeconds"]) == ("2026-03-27T08:00:00.000Z", 71 * 3600)
    assert DispatchWindow.objects.values_list("source", "lateness_ms").get() == ("manual", None)
