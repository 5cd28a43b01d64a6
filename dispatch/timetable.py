"""A cron job's windows: fixed windows that divide the UTC day, or a calendar's fire times (docs/cron.md).

Both answer the same questions, all pure CPU: which window a tick belongs to, when
the next window starts and so how long a window is, the windows of a range, and how
far an instant is from the schedule (a tick further than the tolerance is drift).

A fixed window holds every instant from its start to the next (a tick is never
early). A calendar window runs from one fire time to the next, and a tick up to the
tolerance before a fire time belongs to that fire time (a cron service whose clock
runs a little ahead).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import islice

from dispatch import keys
from dispatch.calendar import Calendar, CalendarError
from dispatch.exceptions import RegistryError

DEFAULT_TOLERANCE = timedelta(seconds=30)
MINUTES_PER_DAY = 1440
SECONDS_PER_DAY = 86_400


@dataclass(frozen=True)
class FixedWindows:
    """Windows of `seconds` (whole minutes that divide a day), aligned on the UTC day."""

    seconds: int
    tolerance: timedelta = DEFAULT_TOLERANCE

    schedule = None  # no cron expression of its own
    timezone = "UTC"

    def window_of(self, moment: datetime) -> datetime:
        """Return the start of the window `moment` falls in."""
        return keys.window_start(moment, self.seconds)

    def following(self, start: datetime) -> datetime:
        """Return the start of the window after the one starting at `start`."""
        return start + timedelta(seconds=self.seconds)

    def after(self, moment: datetime) -> datetime:
        """Return the first window start strictly after `moment`."""
        return self.following(self.window_of(moment))

    def is_start(self, moment: datetime) -> bool:
        """Return whether a window starts at `moment` (on its boundary)."""
        return self.window_of(moment) == moment

    def due_from(self, moment: datetime) -> datetime:
        """Return the first window whose tick is due at or after `moment`: its tick may come any time in it."""
        return self.window_of(moment)

    def window_seconds(self, start: datetime) -> int:
        return self.seconds

    def between(self, first: datetime, last: datetime, *, limit: int | None = None) -> list[datetime]:
        """Return the window starts from `first` to `last`, both included, oldest first (the first `limit`)."""
        start = keys.window_start(first, self.seconds)
        if start < first:
            start = self.following(start)
        step = timedelta(seconds=self.seconds)
        count = max((last - start) // step + 1, 0)
        return [start + step * index for index in range(count if limit is None else min(count, limit))]

    @property
    def signature(self) -> str:
        """Return the schedule as the ledger remembers it (a change of it realigns the reconciler)."""
        return f"every {self.seconds} s"

    def describe(self) -> str:
        minutes = self.seconds // 60
        if minutes == MINUTES_PER_DAY:
            return "Every day at 00:00, UTC"
        if minutes % 60 == 0:
            hours = minutes // 60
            return "Every hour, UTC" if hours == 1 else f"Every {hours} hours, UTC"
        return "Every minute, UTC" if minutes == 1 else f"Every {minutes} minutes, UTC"

    def cron_lines(self) -> list[str]:
        """Return the cron expressions (in UTC) that fire at every window start: one, or one per minute pattern."""
        minutes = self.seconds // 60
        if 60 % minutes == 0:
            return ["* * * * *" if minutes == 1 else f"*/{minutes} * * * *"]
        hours_by_minutes: dict[tuple[int, ...], list[int]] = {}
        for hour in range(24):
            at = tuple(m % 60 for m in range(0, MINUTES_PER_DAY, minutes) if m // 60 == hour)
            if at:
                hours_by_minutes.setdefault(at, []).append(hour)
        return [f"{_values(at)} {_hours(hours)} * * *" for at, hours in hours_by_minutes.items()]


@dataclass(frozen=True)
class CalendarWindows:
    """One window per fire time of a cron expression in a time zone, up to the next fire time."""

    calendar: Calendar
    tolerance: timedelta = DEFAULT_TOLERANCE

    @property
    def schedule(self) -> str:
        return self.calendar.expression

    @property
    def timezone(self) -> str:
        return self.calendar.timezone

    def window_of(self, moment: datetime) -> datetime:
        """Return the fire time a tick at `moment` is for: the last at or before it, or the next within tolerance."""
        return self.calendar.at_or_before(moment + self.tolerance)

    def following(self, start: datetime) -> datetime:
        return self.calendar.after(start)

    def after(self, moment: datetime) -> datetime:
        return self.calendar.after(moment)

    def is_start(self, moment: datetime) -> bool:
        """Return whether a window starts at `moment`: it is a fire time."""
        return self.calendar.at_or_before(moment) == moment

    def due_from(self, moment: datetime) -> datetime:
        """Return the first window whose tick is due at or after `moment`: its tick is due at its fire time."""
        return self.calendar.after(moment - timedelta(seconds=1))

    def window_seconds(self, start: datetime) -> int:
        return round((self.following(start) - start).total_seconds())

    def between(self, first: datetime, last: datetime, *, limit: int | None = None) -> list[datetime]:
        return list(islice(self.calendar.between(first, last), limit))

    @property
    def signature(self) -> str:
        return f"{self.calendar.expression} {self.calendar.timezone}"

    def describe(self) -> str:
        return self.calendar.describe()

    def cron_lines(self) -> list[str]:
        return [self.calendar.expression]

    def shortest_interval(self, *, now: datetime, fires: int = 2000) -> timedelta:
        """Return the shortest time between two fire times over the next year (at most `fires` of them)."""
        shortest = timedelta(days=366)
        previous: datetime | None = None
        for index, fire in enumerate(self.calendar.between(now, now + shortest)):
            if previous is not None:
                shortest = min(shortest, fire - previous)
            if index == fires:
                break
            previous = fire
        return shortest


Timetable = FixedWindows | CalendarWindows


def drift_of(moment: datetime, *, start: datetime, end: datetime) -> timedelta:
    """Return how far `moment` is from the nearest window start, given the window it belongs to [start, end).

    A tick further than its job's tolerance is drift: the cron service's schedule is not the registry's.
    """
    if moment < start:  # a calendar tick early, within the tolerance
        return start - moment
    return min(moment - start, end - moment)


def next_starts(timetable: Timetable, *, now: datetime, count: int) -> list[datetime]:
    """Return the next `count` window starts after `now`."""
    starts = [timetable.after(now)]
    while len(starts) < count:
        starts.append(timetable.following(starts[-1]))
    return starts


def timetable_parse(name: str, entry: Mapping[str, object]) -> Timetable:
    """Return the timetable a `CRON_JOBS` entry names; raise RegistryError naming the job and what to write.

    Either `window_seconds` (whole minutes that divide a day) or `schedule` (five
    cron fields) with an optional `timezone` (IANA, default UTC); an optional
    `tolerance_seconds` (default 30) at most half the shortest time between two windows.
    """
    window, expression = entry.get("window_seconds"), entry.get("schedule")
    if window is not None and expression is not None:
        raise RegistryError(f"{name}: give either window_seconds or schedule, not both")
    tolerance = _tolerance(name, entry.get("tolerance_seconds", DEFAULT_TOLERANCE.seconds))
    if expression is None:
        if "timezone" in entry:
            raise RegistryError(f"{name}: timezone applies to a schedule; fixed windows are aligned on the UTC day")
        fixed = FixedWindows(seconds=_window_seconds(name, window), tolerance=tolerance)
        if tolerance * 2 > timedelta(seconds=fixed.seconds):
            raise RegistryError(f"{name}: tolerance_seconds must be at most half of window_seconds={fixed.seconds}")
        return fixed
    zone = entry.get("timezone", "UTC")
    if not isinstance(expression, str) or not isinstance(zone, str):
        raise RegistryError(
            f"{name}: schedule must be a cron expression such as '0 9 * * 1-5', timezone an IANA name such as "
            "'Europe/Berlin'"
        )
    try:
        calendar = Calendar(expression, zone)
    except CalendarError as exc:
        raise RegistryError(f"{name}: {exc}") from exc
    windows = CalendarWindows(calendar=calendar, tolerance=tolerance)
    # Every schedule fires at most once a minute: the default (30 s) is always at most half of its interval.
    if tolerance > DEFAULT_TOLERANCE:
        shortest = windows.shortest_interval(now=datetime.now(UTC))
        if tolerance * 2 > shortest:
            raise RegistryError(
                f"{name}: tolerance_seconds={tolerance.seconds} is more than half the shortest time between two "
                f"fire times of {calendar.expression!r} ({shortest.total_seconds():.0f} s)"
            )
    return windows


def _window_seconds(name: str, window: object) -> int:
    if not isinstance(window, int) or isinstance(window, bool) or window < 60:
        raise RegistryError(
            f"{name}: window_seconds must be an integer number of seconds, at least 60 (or give a schedule)"
        )
    if window % 60 or SECONDS_PER_DAY % window:
        raise RegistryError(f"{name}: window_seconds={window} must be whole minutes that divide a day")
    return window


def _tolerance(name: str, seconds: object) -> timedelta:
    if type(seconds) is not int or seconds < 0:
        raise RegistryError(f"{name}: tolerance_seconds={seconds!r} must be a whole number of seconds, 0 or more")
    return timedelta(seconds=seconds)


def _values(values: tuple[int, ...] | list[int]) -> str:
    return ",".join(str(value) for value in values)


def _hours(hours: list[int]) -> str:
    if len(hours) == 24:
        return "*"
    step = hours[1] - hours[0] if len(hours) > 1 else 0
    if hours[0] == 0 and step and hours == list(range(0, 24, step)):
        return f"*/{step}"
    return _values(hours)
