"""Exponential backoff: a job's retries (deterministic, with reproducible jitter), and a worker's reconnects."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta

JITTER_SHARE = 0.25


def retry_delay(*, job_id: int, attempt: int, base_seconds: float, max_seconds: float) -> timedelta:
    """Return the wait before retrying after failed attempt number `attempt` (1-based).

    The delay doubles with each attempt from `base_seconds`, capped at `max_seconds`,
    plus up to 25 % jitter derived from (job id, attempt): the same job and attempt
    always wait the same time, while different jobs that failed together spread out.
    """
    exponential = min(max_seconds, base_seconds * 2 ** (attempt - 1))
    digest = hashlib.sha256(f"{job_id}:{attempt}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return timedelta(seconds=exponential * (1 + JITTER_SHARE * fraction))


def reconnect_delays(*, first_seconds: float = 0.5, max_seconds: float = 30.0) -> Iterator[float]:
    """Yield the waits between a worker's attempts to reach its database again: doubling, capped."""
    delay = first_seconds
    while True:
        yield delay
        delay = min(max_seconds, delay * 2)
