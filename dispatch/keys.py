"""Dispatch keys, windows, event ids and correlation ids (docs/cron.md), all pure."""

from __future__ import annotations

import hashlib
import re
import secrets
import uuid
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dispatch.registry import CronJob
    from dispatch.timetable import Timetable

CORRELATION_ID_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_STAMP_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}")
STAMP_LENGTH = len("YYYY-MM-DDTHH:MM")
# The one-off suffix of a forced tick (`dispatch_tick --force`, the admin's Trigger now, a requeued run).
MANUAL_MARK = ":manual-"
MANUAL_SUFFIX_RE = re.compile(rf"{MANUAL_MARK}[0-9a-f]{{8}}")


def window_start(now: datetime, window_seconds: int) -> datetime:
    """Return `now` floored to its window, in UTC (every instant maps into exactly one)."""
    elapsed = (now.astimezone(UTC) - _EPOCH) // timedelta(seconds=1)
    return _EPOCH + timedelta(seconds=elapsed - elapsed % window_seconds)


def dispatch_key(job: str, start: datetime) -> str:
    """Return `cron:<job>:<UTC YYYY-MM-DDTHH:MM>` for a window starting at `start`."""
    start = start.astimezone(UTC)
    # {year:04d}, not %Y: strftime does not pad years before 1000 on every platform.
    return f"cron:{job}:{start.year:04d}-{start:%m-%dT%H:%M}"


def manual_dispatch_key(job: str, start: datetime) -> str:
    """Return a one-off key that bypasses the window: `cron:<job>:<window>:manual-<8 hex>`."""
    return f"{dispatch_key(job, start)}{MANUAL_MARK}{secrets.token_hex(4)}"


def is_manual(key: str) -> bool:
    """Return whether `key` is a one-off manual key (`dispatch_tick --force`, Trigger now, a requeue): a window's
    key with the suffix of `manual_dispatch_key`, a deliberate re-run."""
    return MANUAL_SUFFIX_RE.fullmatch(key[len(window_key(key)) :]) is not None


def window_key(key: str) -> str:
    """Return `key` without what follows its window (`cron:<job>:<window>`): the key of the window it names."""
    scheme, _, rest = key.partition(":")
    job, _, stamp = rest.partition(":")
    return f"{scheme}:{job}:{stamp[:STAMP_LENGTH]}"


def key_problem(key: str, *, job: CronJob) -> str:
    """Return why `key` is no key a tick of `job` makes, or "" when it is one.

    A tick makes `cron:<job>:<window>` for a window of the job (`CronJob.is_window_start`),
    and a forced tick that key with the one-off suffix `:manual-<8 hex>`; nothing else.
    A key off its window's start (`T12:03` for a five-minute job) or with another suffix
    would run a window a second time, beside its tick's key.
    """
    prefix = f"cron:{job.name}:"
    if not key.startswith(prefix):
        return f"is not a key of cron job {job.name!r}"
    start = key_window_start(key, job=job.name)
    if start is None:
        return "names no window (expected cron:<job>:YYYY-MM-DDTHH:MM in UTC)"
    suffix = key[len(prefix) + STAMP_LENGTH :]
    if suffix and not MANUAL_SUFFIX_RE.fullmatch(suffix):
        return f"ends with {suffix[:40]!r}, which no tick makes (the only suffix is :manual-<8 hex>)"
    if not job.is_window_start(start):
        return f"names {start:%Y-%m-%dT%H:%M} UTC, where no window of cron job {job.name!r} starts"
    return ""


def window_problem(key: str, *, job: CronJob, now: datetime) -> str:
    """Return why `key` names no window of `job` that may run at `now`, or "" when it does.

    The key must be one a tick of `job` makes (`key_problem`) and its window must
    have started, or be the next one (a cron service whose clock runs ahead): a
    window further ahead does not exist yet, and claiming it now would make its real
    run a duplicate.
    """
    if problem := key_problem(key, job=job):
        return problem
    start = key_window_start(key, job=job.name)
    assert start is not None  # key_problem read it
    if ahead_of_next_window(start, timetable=job.timetable, now=now):
        return "names a window that has not started yet (more than one window ahead)"
    return ""


def key_window_start(key: str, *, job: str) -> datetime | None:
    """Return the start of the window `key` names (`cron:<job>:<window>`, perhaps with a suffix), or None."""
    prefix = f"cron:{job}:"
    if not key.startswith(prefix):
        return None
    stamp, suffix = key[len(prefix) : len(prefix) + STAMP_LENGTH], key[len(prefix) + STAMP_LENGTH :]
    if not _STAMP_RE.fullmatch(stamp) or (suffix and not suffix.startswith(":")):
        return None
    try:
        return datetime.strptime(stamp, "%Y-%m-%dT%H:%M").replace(tzinfo=UTC)
    except ValueError:
        return None


def any_key_window_start(key: str) -> datetime | None:
    """Return the start of the window `key` names, whichever job's it is; None for a key that names none."""
    job = key.split(":")[1] if key.startswith("cron:") and key.count(":") >= 2 else ""
    return key_window_start(key, job=job) if job else None


def ahead_of_next_window(start: datetime, *, timetable: Timetable, now: datetime) -> bool:
    """Return whether the window starting at `start` begins after the next one to start after `now`."""
    return start > timetable.after(now)


def event_id(event_name: str, key: str) -> str:
    """Return the deterministic event id `<event name>:<dispatch key>`."""
    return f"{event_name}:{key}"


def correlation_id(header: str | None) -> str:
    """Return the caller's correlation id when it is well-formed, else a new UUID."""
    if header is not None and CORRELATION_ID_RE.fullmatch(header):
        return header
    return str(uuid.uuid4())


def canary_bucket(key: str) -> int:
    """Return the key's deterministic bucket in 0..99 for the canary percentage."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") % 100
