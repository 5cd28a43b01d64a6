"""ISO-8601 formatting and parsing of UTC instants, as the contracts spell them."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from django.utils.dateparse import parse_datetime

PERIOD_RE = re.compile(r"([0-9]{1,6})([smhd])")
PERIOD_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
MAX_PERIOD = timedelta(days=366)


def parse_period(text: str) -> timedelta:
    """Return the period `text` names (`15m`, `24h`, `7d`); raise ValueError saying what to write."""
    match = PERIOD_RE.fullmatch(text.strip())
    if match is None:
        raise ValueError(
            f"{text!r} is not a period: write a whole number and a unit (s, m, h or d), e.g. 15m, 24h or 7d"
        )
    period = timedelta(**{PERIOD_UNITS[match[2]]: int(match[1])})
    if not period:
        raise ValueError(
            f"{text!r} is an empty period (it covers no time at all): write at least 1s, e.g. 15m, 24h or 7d"
        )
    if period > MAX_PERIOD:
        raise ValueError(f"{text!r} is longer than {MAX_PERIOD.days}d; history is only kept for WINDOWS_RETENTION_DAYS")
    return period


def iso_utc(value: datetime) -> str:
    """Return `value` as ISO-8601 in UTC with a `Z` suffix (millisecond precision)."""
    return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_iso_utc(text: str) -> datetime:
    """Parse an ISO-8601 instant that names its offset; raise ValueError otherwise."""
    parsed = parse_datetime(text.strip())
    if parsed is None:
        raise ValueError(f"{text!r} is not an ISO-8601 date-time, e.g. 2026-01-31T09:30:00Z")
    if parsed.tzinfo is None:
        raise ValueError(f"{text!r} has no UTC offset; add Z or +00:00")
    try:
        return parsed.astimezone(UTC)
    except OverflowError as exc:  # 0001-01-01T00:00+01:00 is before year 1 in UTC
        raise ValueError(f"{text!r} is outside the years 1 to 9999 once moved to UTC") from exc
