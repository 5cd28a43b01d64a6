"""Cron expressions in a time zone: a calendar job's fire times, as cron(8) computes them (docs/cron.md).

cronsim parses the expression and walks the calendar with cron(8)'s DST rules: a
five-field expression naming its minutes and hours fires at a skipped local time
once, right after the change, and at a repeated local time once, at its first
occurrence; one with `*` in its minute or hour field fires by elapsed time. What
this module adds, each a difference of cronsim's iteration from "the fire times as
instants":

- `after(t)` is strictly after `t`. cronsim starts from `t`'s wall-clock time, so
  from the second pass of a repeated hour (02:10 CET, after 02:30 CEST fired) it
  answers the first pass's 02:30, which is earlier than `t`: such answers are
  skipped.
- `at_or_before(t)` includes `t` and is never too early. cronsim's reverse walk
  excludes its start and, in the second pass of a repeated hour, passes over the
  first pass's fire time (it answers yesterday's): its answer is moved forward over
  every fire time up to `t`.
- Only the five standard fields, in cron(8)'s syntax (numbers, names, `*`, `-`,
  `,`, `/`): cronsim's extensions (`L`, `W`, `#`, a seconds field) are refused, so
  that any cron service can be configured from the registry (`cron_config`).
- An expression that never fires (cronsim gives up after 50 years) is refused.

Fire times are whole minutes, returned in UTC.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

# What cron(8) reads in a field: numbers, month and day names, and * - , /.
FIELD_RE = re.compile(r"[0-9A-Za-z*,/-]+")
NAMES_RE = re.compile(r"[A-Za-z]+")
NAMES = frozenset(
    [
        "JAN",
        "FEB",
        "MAR",
        "APR",
        "MAY",
        "JUN",
        "JUL",
        "AUG",
        "SEP",
        "OCT",
        "NOV",
        "DEC",
        "SUN",
        "MON",
        "TUE",
        "WED",
        "THU",
        "FRI",
        "SAT",
    ]
)
FIELDS = ("minute", "hour", "day of month", "month", "day of week")
ONE_SECOND = timedelta(seconds=1)


class CalendarError(ValueError):
    """An expression or a time zone that cannot make a calendar; the message says what to write."""


@dataclass(frozen=True)
class Calendar:
    """A five-field cron expression in an IANA time zone."""

    expression: str
    timezone: str = "UTC"
    zone: ZoneInfo = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "expression", " ".join(self.expression.split()))
        object.__setattr__(self, "zone", _zone(self.timezone))
        _check_fields(self.expression)
        try:
            first = CronSim(self.expression, datetime(2000, 1, 1, tzinfo=self.zone))
        except CronSimError as exc:
            raise CalendarError(_invalid(self.expression, exc)) from exc
        try:
            next(first)
        except StopIteration:
            raise CalendarError(f"schedule {self.expression!r} never fires (no such date)") from None

    def after(self, moment: datetime) -> datetime:
        """Return the first fire time strictly after `moment`."""
        return next(self._forward(moment))

    def at_or_before(self, moment: datetime) -> datetime:
        """Return the last fire time at or before `moment`."""
        # cronsim's reverse walk starts one second before its start: start it a second after `moment`.
        start = moment.astimezone(self.zone).replace(microsecond=0) + ONE_SECOND
        fire = next(CronSim(self.expression, start, reverse=True)).astimezone(UTC)
        while (later := self.after(fire)) <= moment:
            fire = later
        return fire

    def between(self, first: datetime, last: datetime) -> Iterator[datetime]:
        """Yield the fire times from `first` to `last`, both included, oldest first."""
        # cronsim walks from a whole second: from `first` less one, it may answer a fire time just before `first`.
        for fire in self._forward(first - ONE_SECOND):
            if fire > last:
                return
            if fire >= first:
                yield fire

    def describe(self) -> str:
        """Return the schedule in words with its time zone: "At 09:00, Monday through Friday, Europe/Berlin"."""
        return f"{self.words}, {self.timezone}"

    @cached_property
    def words(self) -> str:
        # Imported here: cron-descriptor takes a tenth of a second to import, which every process
        # would pay at start-up for the few that describe a schedule (the admin, `cron_jobs`).
        from cron_descriptor import ExpressionDescriptor, FormatException, Options

        options = Options(locale_code="en_US", use_24hour_time_format=True)
        try:
            return str(ExpressionDescriptor(self.expression, options).get_description())
        except FormatException:  # cron-descriptor reads less than cron(8) in a few corners: say it plainly
            return f"cron {self.expression}"

    @cached_property
    def fields(self) -> tuple[frozenset[int], ...]:
        """Return the values each field allows (minute, hour, day of month, month, day of week 0-6, 0 = Sunday)."""
        parsed = CronSim(self.expression, datetime(2000, 1, 1))
        weekdays = frozenset(day % 7 for day in parsed.weekdays if isinstance(day, int))
        return (
            frozenset(parsed.minutes),
            frozenset(parsed.hours),
            frozenset(parsed.days),
            frozenset(parsed.months),
            weekdays,
        )

    @property
    def days_either(self) -> bool:
        """Return whether a day matches by its day of month OR its day of week (cron(8): neither field starts `*`)."""
        parts = self.expression.split()
        return not (parts[2].startswith("*") or parts[4].startswith("*"))

    def _forward(self, moment: datetime) -> Iterator[datetime]:
        """Yield the fire times strictly after `moment`, oldest first, each once."""
        last = moment
        for fire in CronSim(self.expression, moment.astimezone(self.zone)):
            fire = fire.astimezone(UTC)
            if fire > last:
                last = fire
                yield fire


def _zone(name: str) -> ZoneInfo:
    if not isinstance(name, str) or not name:
        raise CalendarError(f"timezone {name!r} must be an IANA time zone name such as 'Europe/Berlin' or 'UTC'")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise CalendarError(
            f"timezone {name!r} is not a known IANA time zone (e.g. 'Europe/Berlin', 'America/New_York', 'UTC')"
        ) from exc


def _invalid(expression: str, error: CronSimError) -> str:
    """Return why cronsim refused `expression`: a bad field, or days that no month has (it never fires)."""
    parts = expression.split()
    try:
        # Each field valid on its own: the days with any month, the months with day 1.
        CronSim(" ".join([*parts[:3], "*", parts[4]]), datetime(2000, 1, 1))
        CronSim(" ".join([*parts[:2], "1", *parts[3:]]), datetime(2000, 1, 1))
    except CronSimError:
        return f"schedule {expression!r} is not a cron expression: {error}"
    return f"schedule {expression!r} never fires: no month of {parts[3]!r} has day {parts[2]!r}"


def _check_fields(expression: str) -> None:
    parts = expression.split()
    if len(parts) != len(FIELDS):
        raise CalendarError(
            f"schedule {expression!r} must have five fields (minute hour day-of-month month day-of-week), "
            "e.g. '0 9 * * 1-5'"
        )
    for name, part in zip(FIELDS, parts, strict=True):
        words = {word.upper() for word in NAMES_RE.findall(part)}
        if not FIELD_RE.fullmatch(part) or not words <= NAMES:
            raise CalendarError(
                f"schedule {expression!r}: the {name} field {part!r} is not cron(8) syntax "
                "(numbers, names such as MON or JAN, and * - , /)"
            )
