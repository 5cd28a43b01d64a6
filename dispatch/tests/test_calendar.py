"""A calendar's fire times: cron(8)'s DST rules on the 2026 EU and US changes, half-hour zones, weekdays, month days.

2026's changes: Europe/Berlin springs forward on 29 March at 02:00 CET (01:00 UTC) and
falls back on 25 October at 03:00 CEST (01:00 UTC); America/New_York springs forward on
8 March at 02:00 EST (07:00 UTC) and falls back on 1 November at 02:00 EDT (06:00 UTC).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from dispatch.calendar import Calendar, CalendarError


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def fires(calendar: Calendar, first: str, last: str) -> list[str]:
    return [f"{fire:%m-%d %H:%M}" for fire in calendar.between(utc(first), utc(last))]


@pytest.mark.parametrize(
    ("expression", "zone", "first", "last", "expected"),
    [
        # A local time skipped by the spring change fires once, right after the change (03:00 CEST = 01:00 UTC).
        (
            "30 2 * * *",
            "Europe/Berlin",
            "2026-03-28T00:00",
            "2026-03-30T23:59",
            ["03-28 01:30", "03-29 01:00", "03-30 00:30"],
        ),
        # A local time repeated by the autumn change fires once, at its first occurrence (02:30 CEST = 00:30 UTC).
        (
            "30 2 * * *",
            "Europe/Berlin",
            "2026-10-24T00:00",
            "2026-10-26T23:59",
            ["10-24 00:30", "10-25 00:30", "10-26 01:30"],
        ),
        # New York: 02:30 does not exist on 8 March (fires at 03:00 EDT = 07:00 UTC); 01:30 twice on 1 November.
        (
            "30 2 * * *",
            "America/New_York",
            "2026-03-07T00:00",
            "2026-03-09T23:59",
            ["03-07 07:30", "03-08 07:00", "03-09 06:30"],
        ),
        (
            "30 1 * * *",
            "America/New_York",
            "2026-10-31T00:00",
            "2026-11-02T23:59",
            ["10-31 05:30", "11-01 05:30", "11-02 06:30"],
        ),
        # A wildcard hour fires by elapsed time: every hour, both 02:00s in October, none skipped in March.
        (
            "0 * * * *",
            "Europe/Berlin",
            "2026-10-24T23:00",
            "2026-10-25T03:00",
            ["10-24 23:00", "10-25 00:00", "10-25 01:00", "10-25 02:00", "10-25 03:00"],
        ),
        (
            "0 * * * *",
            "Europe/Berlin",
            "2026-03-28T23:00",
            "2026-03-29T02:00",
            ["03-28 23:00", "03-29 00:00", "03-29 01:00", "03-29 02:00"],
        ),
        (
            "*/30 2 * * *",
            "Europe/Berlin",
            "2026-10-25T00:00",
            "2026-10-25T02:00",
            ["10-25 00:00", "10-25 00:30", "10-25 01:00", "10-25 01:30"],
        ),
        ("*/30 2 * * *", "Europe/Berlin", "2026-03-29T00:00", "2026-03-29T23:59", []),
        # A half-hour zone: 09:00 IST is 03:30 UTC, weekdays only (27 March 2026 is a Friday).
        ("0 9 * * 1-5", "Asia/Kolkata", "2026-03-27T00:00", "2026-03-31T00:00", ["03-27 03:30", "03-30 03:30"]),
        # Weekdays at 09:00 Berlin: 08:00 UTC in winter, 07:00 UTC in summer, never on the weekend.
        (
            "0 9 * * MON-FRI",
            "Europe/Berlin",
            "2026-03-26T00:00",
            "2026-03-31T00:00",
            ["03-26 08:00", "03-27 08:00", "03-30 07:00"],
        ),
        # The 1st of the month, and a day of month OR a weekday (neither field a `*`: cron(8)'s OR).
        ("0 0 1 * *", "UTC", "2026-01-15T00:00", "2026-04-15T00:00", ["02-01 00:00", "03-01 00:00", "04-01 00:00"]),
        ("0 12 13 * FRI", "UTC", "2026-03-01T00:00", "2026-03-20T00:00", ["03-06 12:00", "03-13 12:00"]),
    ],
)
def test_calendar__fires_as_cron8_does(expression: str, zone: str, first: str, last: str, expected: list[str]) -> None:
    assert fires(Calendar(expression, zone), first, last) == expected


def test_calendar__after_is_strictly_later_even_from_the_second_pass_of_a_repeated_hour() -> None:
    calendar = Calendar("30 2 * * *", "Europe/Berlin")

    # 02:10 CET (01:10 UTC) comes after 02:30 CEST (00:30 UTC) fired: cronsim alone answers 00:30 again.
    assert calendar.after(utc("2026-10-25T01:10")) == utc("2026-10-26T01:30")
    assert calendar.after(utc("2026-10-25T00:30")) == utc("2026-10-26T01:30")


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        ("2026-10-25T00:30", "2026-10-25T00:30"),  # at a fire time: itself
        ("2026-10-25T01:20", "2026-10-25T00:30"),  # 02:20 CET, the second pass: cronsim alone answers the day before
        ("2026-10-25T00:29:59", "2026-10-24T00:30"),
        ("2026-03-29T01:00", "2026-03-29T01:00"),  # the skipped 02:30 fired at 03:00 CEST
        ("2026-03-29T00:59", "2026-03-28T01:30"),
    ],
)
def test_calendar__at_or_before_includes_the_moment_and_never_misses_the_first_pass(moment: str, expected: str) -> None:
    assert Calendar("30 2 * * *", "Europe/Berlin").at_or_before(datetime.fromisoformat(moment + "+00:00")) == utc(
        expected
    )


@pytest.mark.parametrize(
    ("expression", "zone", "message"),
    [
        ("0 9 * *", "UTC", "must have five fields"),
        ("0 0 9 * * *", "UTC", "must have five fields"),
        ("61 9 * * *", "UTC", "is not a cron expression: Bad minute"),
        ("0 9 * * MON#2", "UTC", "the day of week field 'MON#2' is not cron(8) syntax"),
        ("0 0 L * *", "UTC", "the day of month field 'L' is not cron(8) syntax"),
        ("0 0 30 2 *", "UTC", "never fires: no month of '2' has day '30'"),
        ("0 0 31 4,6,9,11 *", "UTC", "never fires"),
        ("0 9 * * *", "Europe/Berlinn", "timezone 'Europe/Berlinn' is not a known IANA time zone"),
        ("0 9 * * *", "", "must be an IANA time zone name"),
    ],
)
def test_calendar__refuses_what_cron8_would_not_run(expression: str, zone: str, message: str) -> None:
    with pytest.raises(CalendarError, match=re.escape(message)):
        Calendar(expression, zone)


@pytest.mark.parametrize(
    ("expression", "zone", "words"),
    [
        ("0 9 * * 1-5", "Europe/Berlin", "At 09:00, Monday through Friday, Europe/Berlin"),
        ("*/15 * * * *", "UTC", "Every 15 minutes, UTC"),
        ("30 2 1 * *", "Asia/Kolkata", "At 02:30, on day 1 of the month, Asia/Kolkata"),
    ],
)
def test_calendar__describe_says_the_schedule_in_words_with_its_zone(expression: str, zone: str, words: str) -> None:
    assert Calendar(expression, zone).describe() == words


def test_calendar__spaces_are_normalised_and_the_fire_times_are_whole_minutes() -> None:
    calendar = Calendar("  0   9 * *  1-5 ", "Asia/Kolkata")

    fire = calendar.after(utc("2026-03-27T00:00:30"))

    assert calendar.expression == "0 9 * * 1-5"
    assert (fire, fire.second, fire.microsecond) == (utc("2026-03-27T03:30"), 0, 0)
    assert calendar.after(fire - timedelta(microseconds=1)) == fire


@pytest.mark.parametrize(
    ("first", "expected"),
    [
        ("2026-03-27T08:00:00", ["03-27 08:00", "03-30 07:00"]),  # a fire time at `first` is included
        ("2026-03-27T08:00:00.400000", ["03-30 07:00"]),  # one before `first`, however little, is not
        ("2026-03-27T07:59:59.999999", ["03-27 08:00", "03-30 07:00"]),
    ],
)
def test_calendar__between_starts_at_first_to_the_microsecond(first: str, expected: list[str]) -> None:
    """The reconciler's lookback and a job's `schedule_since` are instants with microseconds (docs/cron.md)."""
    assert fires(Calendar("0 9 * * 1-5", "Europe/Berlin"), first, "2026-03-30T23:59") == expected
