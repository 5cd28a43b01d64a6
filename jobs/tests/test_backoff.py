from __future__ import annotations

from datetime import timedelta
from itertools import islice

from jobs.backoff import reconnect_delays, retry_delay


def test_retry_delay__doubles_with_reproducible_jitter() -> None:
    delays = [retry_delay(job_id=42, attempt=n, base_seconds=5, max_seconds=3600) for n in range(1, 6)]

    for attempt, delay in enumerate(delays, start=1):
        base = timedelta(seconds=5 * 2 ** (attempt - 1))
        assert base <= delay < base * 1.25
    assert delays == [retry_delay(job_id=42, attempt=n, base_seconds=5, max_seconds=3600) for n in range(1, 6)]


def test_retry_delay__jitter_spreads_jobs_that_failed_together() -> None:
    delays = {retry_delay(job_id=job_id, attempt=1, base_seconds=5, max_seconds=3600) for job_id in range(50)}

    assert len(delays) == 50


def test_retry_delay__is_capped() -> None:
    delay = retry_delay(job_id=1, attempt=30, base_seconds=5, max_seconds=60)

    assert timedelta(seconds=60) <= delay < timedelta(seconds=75)


def test_reconnect_delays__double_from_half_a_second_up_to_thirty() -> None:
    assert list(islice(reconnect_delays(), 9)) == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
