"""Properties of the window arithmetic and the keys (hypothesis): every instant maps into exactly one window."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

from hypothesis import example, given, settings
from hypothesis import strategies as st

from dispatch import keys
from dispatch.timetable import SECONDS_PER_DAY
from testsupport.stress import examples

# Every window the registry accepts: whole minutes that divide a day.
WINDOWS = [seconds for seconds in range(60, SECONDS_PER_DAY + 1, 60) if SECONDS_PER_DAY % seconds == 0]
KEY_RE = re.compile(r"cron:(?P<job>[a-z0-9-]+):(?P<at>\d{4}-\d\d-\d\dT\d\d:\d\d)")
# Leave a day of room at either end of the calendar, so a window's end is still a datetime.
instants = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.timezones() | st.just(UTC)
)
windows = st.sampled_from(WINDOWS)


@settings(max_examples=examples(300))
@given(moment=instants, seconds=windows)
@example(moment=datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC), seconds=86400)  # a leap day
@example(moment=datetime(2016, 12, 31, 23, 59, 59, tzinfo=UTC), seconds=60)  # before a leap second
@example(moment=datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC), seconds=300)  # before the epoch
@example(moment=datetime(999, 1, 1, 0, 0, 30, tzinfo=UTC), seconds=60)  # a year of three digits
def test_window_start__the_instant_lies_in_its_window_which_is_aligned_and_utc(moment: datetime, seconds: int) -> None:
    start = keys.window_start(moment, seconds)

    assert start.tzinfo is UTC
    assert start <= moment < start + timedelta(seconds=seconds)
    assert (start - datetime(1970, 1, 1, tzinfo=UTC)) % timedelta(seconds=seconds) == timedelta(0)
    assert keys.window_start(start, seconds) == start


@settings(max_examples=examples(300))
@given(moment=instants, seconds=windows, micros=st.integers(min_value=0, max_value=SECONDS_PER_DAY * 10**6))
def test_window_start__every_instant_of_a_window_maps_to_that_window_only(
    moment: datetime, seconds: int, micros: int
) -> None:
    start = keys.window_start(moment, seconds)
    inside = start + timedelta(microseconds=micros % (seconds * 10**6))
    end = start + timedelta(seconds=seconds)

    assert keys.window_start(inside, seconds) == start
    assert keys.window_start(end, seconds) == end  # the next window begins exactly at the end
    assert keys.window_start(start - timedelta(microseconds=1), seconds) == start - timedelta(seconds=seconds)


@settings(max_examples=examples(300))
@given(moment=instants, seconds=windows, zone=st.timezones())
@example(  # the autumn DST change in Berlin: 02:30 happens twice locally, once in UTC
    moment=datetime(2026, 10, 25, 0, 30, tzinfo=UTC), seconds=3600, zone=ZoneInfo("Europe/Berlin")
)
def test_window_start__local_time_zones_and_dst_are_irrelevant(moment: datetime, seconds: int, zone: tzinfo) -> None:
    assert keys.window_start(moment.astimezone(zone), seconds) == keys.window_start(moment, seconds)


@settings(max_examples=examples(300))
@given(moment=instants, seconds=windows, job=st.from_regex(r"[a-z0-9][a-z0-9-]{0,47}", fullmatch=True))
def test_dispatch_key__names_the_window_start_exactly_and_one_key_per_window(
    moment: datetime, seconds: int, job: str
) -> None:
    start = keys.window_start(moment, seconds)

    key = keys.dispatch_key(job, start)

    match = KEY_RE.fullmatch(key)
    assert match is not None, key
    assert match["job"] == job
    assert datetime.strptime(match["at"], "%Y-%m-%dT%H:%M").replace(tzinfo=UTC) == start
    assert keys.dispatch_key(job, keys.window_start(moment.astimezone(UTC), seconds)) == key
    following = keys.dispatch_key(job, keys.window_start(start + timedelta(seconds=seconds), seconds))
    assert following != key
    assert keys.event_id("background/process.requested", key) == f"background/process.requested:{key}"


@settings(max_examples=examples(300))
@given(header=st.none() | st.text(max_size=80) | st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True))
@example(header="trace-1\r\nSet-Cookie: session=stolen")
@example(header="x" * 65)
@example(header="trace\x00")
@example(header="trace-1\n")
def test_correlation_id__is_the_header_when_well_formed_else_a_fresh_uuid(header: str | None) -> None:
    result = keys.correlation_id(header)

    assert keys.CORRELATION_ID_RE.fullmatch(result)
    if header is not None and keys.CORRELATION_ID_RE.fullmatch(header):
        assert result == header
    else:
        assert str(uuid.UUID(result)) == result


@settings(max_examples=examples(200))
@given(key=st.text(st.characters(exclude_categories=["Cs"]), max_size=200))
def test_canary_bucket__is_a_deterministic_share_in_0_to_99(key: str) -> None:
    bucket = keys.canary_bucket(key)

    assert 0 <= bucket < 100
    assert bucket == keys.canary_bucket(key)
