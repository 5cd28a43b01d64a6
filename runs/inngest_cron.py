"""The cron schedules Inngest accepts for a function's cron trigger (RECONCILE_CRON), checked before a sync.

Inngest refuses a whole app's sync when one of its functions is invalid, so a schedule
it cannot read would silently stop every function: `manage.py check` says so first
(runs.E001). What Inngest reads (pkg/inngest/trigger.go in github.com/inngest/inngest,
robfig/cron's standard parser without descriptors): an optional `TZ=<zone> ` (or
`CRON_TZ=`), then exactly five fields — minute 0-59, hour 0-23, day of month 1-31,
month 1-12 or jan-dec, day of week 0-6 or sun-sat — each a comma list of `*`, `?`, a
value or a range `a-b`, with an optional `/step`. No seconds, no `@daily`, no `L`,
`W` or `#`, no 7 for Sunday. (And its oddities: an empty list entry is skipped, a
value may carry a sign, and a `*` ignores a range after it.)
"""

from __future__ import annotations

import re
import zoneinfo

MAX_LENGTH = 255
_MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
# (name, lowest, highest, names numbered from the lowest)
_FIELDS = (
    ("minute", 0, 59, ()),
    ("hour", 0, 23, ()),
    ("day of month", 1, 31, ()),
    ("month", 1, 12, _MONTHS),
    ("day of week", 0, 6, _DAYS),
)
_ZONE = re.compile(r"(?:CRON_)?TZ=(\S*) ")
# A part: `*` or `?` (whatever follows a hyphen after it), or a value with an optional end; then an optional step.
_PART = re.compile(r"(?:(?P<all>[*?])(?:-[^/]*)?|(?P<start>[^-/]+)(?:-(?P<end>[^-/]+))?)(?:/(?P<step>[^/]*))?")


def cron_problem(schedule: str) -> str:
    """Return why Inngest would refuse `schedule` as a cron trigger, or "" when it reads it."""
    if len(schedule) > MAX_LENGTH:
        return f"is longer than {MAX_LENGTH} characters"
    if zone := _ZONE.match(schedule):
        if not _is_zone(zone.group(1)):
            return f"names no time zone ({zone.group(1)!r}; an IANA name such as Europe/Paris)"
        schedule = schedule[zone.end() :]
    fields = schedule.split()
    if len(fields) != len(_FIELDS):
        count = f"{len(fields)} field" + ("" if len(fields) == 1 else "s")
        return f"has {count}: Inngest reads exactly five (minute hour day-of-month month day-of-week)"
    for text, (name, lowest, highest, names) in zip(fields, _FIELDS, strict=True):
        for part in filter(None, text.split(",")):  # an empty part of a list is skipped, as Inngest skips it
            if not _readable(part, lowest, highest, names):
                return (
                    f"{name} {part!r} is not *, a value from {lowest} to {highest}, or a range, with an optional /step"
                )
    return ""


def _readable(part: str, lowest: int, highest: int, names: tuple[str, ...]) -> bool:
    match = _PART.fullmatch(part)
    if match is None:
        return False
    try:
        start = lowest if match["all"] else _value(match["start"], lowest, names)
        end = highest if match["all"] or (match["step"] is not None and not match["end"]) else start
        end = _value(match["end"], lowest, names) if match["end"] else end
        step = 1 if match["step"] is None else _value(match["step"], 0, ())
    except ValueError:
        return False
    return lowest <= start <= end <= highest and step > 0


def _value(text: str, lowest: int, names: tuple[str, ...]) -> int:
    """Return a value: a name of the field, or a whole number as Go reads one (a sign allowed), never negative."""
    if text.lower() in names:
        return names.index(text.lower()) + lowest
    if not re.fullmatch(r"[+-]?[0-9]+", text) or int(text) < 0:
        raise ValueError(text)
    return int(text)


def _is_zone(name: str) -> bool:
    if name in ("", "UTC", "Local"):
        return True
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True
