from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest

from dispatch import keys
from dispatch.registry import CronJob
from dispatch.timetable import FixedWindows


@pytest.mark.parametrize(
    ("moment", "seconds", "start"),
    [
        (datetime(2026, 3, 14, 15, 9, 26, 500000, tzinfo=UTC), 60, datetime(2026, 3, 14, 15, 9, tzinfo=UTC)),
        (datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC), 300, datetime(2026, 3, 14, 15, 5, tzinfo=UTC)),
        (datetime(2026, 3, 14, 15, 10, tzinfo=UTC), 300, datetime(2026, 3, 14, 15, 10, tzinfo=UTC)),
        (datetime(2026, 3, 14, 23, 59, 59, tzinfo=UTC), 3600, datetime(2026, 3, 14, 23, tzinfo=UTC)),
        (datetime(2026, 3, 14, 23, 59, 59, tzinfo=UTC), 86400, datetime(2026, 3, 14, tzinfo=UTC)),
        # An offset instant maps into the UTC window.
        (
            datetime(2026, 3, 15, 1, 2, 3, tzinfo=timezone(timedelta(hours=2))),
            60,
            datetime(2026, 3, 14, 23, 2, tzinfo=UTC),
        ),
    ],
)
def test_window_start__floors_to_the_window_in_utc(moment: datetime, seconds: int, start: datetime) -> None:
    assert keys.window_start(moment, seconds) == start


def test_dispatch_key__names_the_job_and_the_utc_minute() -> None:
    start = datetime(2026, 3, 14, 15, 5, tzinfo=UTC)

    assert keys.dispatch_key("background-jobs", start) == "cron:background-jobs:2026-03-14T15:05"
    assert keys.event_id("background/process.requested", "cron:background-jobs:2026-03-14T15:05") == (
        "background/process.requested:cron:background-jobs:2026-03-14T15:05"
    )


def test_manual_dispatch_key__is_one_off() -> None:
    start = datetime(2026, 3, 14, 15, 5, tzinfo=UTC)

    first, second = keys.manual_dispatch_key("counter", start), keys.manual_dispatch_key("counter", start)

    assert first.startswith("cron:counter:2026-03-14T15:05:manual-")
    assert len(first.rsplit("-", 1)[1]) == 8
    assert first != second


@pytest.mark.parametrize("header", ["abc", "A.b_c-9", "x" * 64])
def test_correlation_id__keeps_a_well_formed_header(header: str) -> None:
    assert keys.correlation_id(header) == header


@pytest.mark.parametrize("header", [None, "", "x" * 65, "a b", "a\r\nSet-Cookie: x", "ü", "a/b"])
def test_correlation_id__replaces_anything_else_with_a_uuid(header: str | None) -> None:
    value = keys.correlation_id(header)

    assert str(uuid.UUID(value)) == value


def test_canary_bucket__is_deterministic_and_spread() -> None:
    buckets = [
        keys.canary_bucket(f"cron:background-jobs:2026-03-14T{h:02}:{m:02}") for h in range(24) for m in range(60)
    ]

    assert buckets == [
        keys.canary_bucket(f"cron:background-jobs:2026-03-14T{h:02}:{m:02}") for h in range(24) for m in range(60)
    ]
    assert all(0 <= bucket < 100 for bucket in buckets)
    assert 0.2 < sum(bucket < 25 for bucket in buckets) / len(buckets) < 0.3


NOW = datetime(2026, 3, 14, 15, 9, 26, 500000, tzinfo=UTC)
COUNTER = CronJob(name="counter", timetable=FixedWindows(seconds=300), units=())


def job(name: str, seconds: int) -> CronJob:
    return CronJob(name=name, timetable=FixedWindows(seconds=seconds), units=())


@pytest.mark.parametrize(
    ("key", "name", "seconds"),
    [
        ("cron:counter:2026-03-14T15:05", "counter", 300),  # the current window
        ("cron:counter:2026-03-14T15:10", "counter", 300),  # the next one (a cron service's clock ahead)
        ("cron:counter:2020-01-01T00:00", "counter", 300),  # any past one
        ("cron:counter:2026-03-14T15:10:manual-0a1b2c3d", "counter", 300),  # a one-off key of the next window
        ("cron:background-jobs:2026-03-14T15:10", "background-jobs", 60),
        ("cron:background-jobs:2026-03-14T15:07", "background-jobs", 60),
        ("cron:daily:2026-03-14T00:00", "daily", 86400),
    ],
)
def test_window_problem__accepts_the_jobs_windows_up_to_the_next_one(key: str, name: str, seconds: int) -> None:
    assert keys.window_problem(key, job=job(name, seconds), now=NOW) == ""


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("cron:counter:2026-03-14T15:15", "names a window that has not started yet"),  # two windows ahead
        ("cron:counter:2099-01-01T00:00", "names a window that has not started yet"),
        ("cron:counter:2099-01-01T00:00:manual-0a1b2c3d", "names a window that has not started yet"),
        ("cron:background-jobs:2026-03-14T15:05", "is not a key of cron job 'counter'"),
        ("cron:counter-2:2026-03-14T15:05", "is not a key of cron job 'counter'"),
        ("counter:2026-03-14T15:05", "is not a key of cron job 'counter'"),
        ("cron:counter:2026-03-14", "names no window"),
        ("cron:counter:2026-03-14T15:05x", "names no window"),
        ("cron:counter:2026-02-30T15:05", "names no window"),
        ("cron:counter:tomorrow", "names no window"),
        # Keys a holder of the event key could make up to run one window many times: no tick makes them.
        ("cron:counter:2026-03-14T15:03", "names 2026-03-14T15:03 UTC, where no window of cron job 'counter' starts"),
        ("cron:counter:2026-03-14T15:03:manual-0a1b2c3d", "where no window of cron job 'counter' starts"),
        ("cron:counter:2026-03-14T15:05:again-1", "ends with ':again-1', which no tick makes"),
        ("cron:counter:2026-03-14T15:05:manual-0A1B2C3D", "which no tick makes"),
        ("cron:counter:2026-03-14T15:05:manual-0a1b2c3d:manual-0a1b2c3d", "which no tick makes"),
        ("cron:counter:2026-03-14T15:05:manual-0a1b2c3", "which no tick makes"),
    ],
)
def test_window_problem__refuses_future_foreign_unreadable_or_made_up_keys(key: str, problem: str) -> None:
    assert problem in keys.window_problem(key, job=COUNTER, now=NOW)


@pytest.mark.parametrize(
    ("moment", "seconds", "starts"),
    [
        (datetime(2026, 3, 14, 15, 5, tzinfo=UTC), 300, True),
        (datetime(2026, 3, 14, 15, 3, tzinfo=UTC), 300, False),
        (datetime(2026, 3, 14, 15, 5, 30, tzinfo=UTC), 300, False),
        (datetime(2026, 3, 14, 15, 3, tzinfo=UTC), 60, True),
        (datetime(2026, 3, 14, 0, 0, tzinfo=UTC), 86400, True),
        (datetime(2026, 3, 14, 12, 0, tzinfo=UTC), 86400, False),
    ],
)
def test_is_window_start__only_the_jobs_window_boundaries(moment: datetime, seconds: int, starts: bool) -> None:
    assert job("counter", seconds).is_window_start(moment) is starts
