"""The executor double reads a `Retry-After` as Inngest does (testsupport.retries): whole seconds or a date, clipped
from the second it came in."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from testsupport.retries import MAX_RETRY_AFTER, retry_after

CAME_IN = 1_773_500_940.25  # 2026-03-14T15:09:00.25Z


@pytest.fixture
def local_time_in_new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize(
    ("header", "wait"),
    [
        ("30", 29.75),  # whole seconds count from the second the answer came in
        ("2026-03-14T15:10:00.000Z", 59.75),  # what the SDK's RetryAfterError writes
        ("Sat, 14 Mar 2026 15:10:00 GMT", 59.75),
        ("2020-01-01T00:00:00Z", 0.75),  # in the past: the next second
        ("2030-01-01T00:00:00Z", MAX_RETRY_AFTER - 0.25),  # beyond a day: a day from the second it came in
        ("1_0", None),  # not a number as Go reads one, and no date: the backoff table's wait instead
        ("0", None),
    ],
)
def test_retry_after__is_read_and_clipped_as_inngest_reads_it(header: str, wait: float | None) -> None:
    assert retry_after(header, received_at=CAME_IN) == wait


def test_retry_after__a_date_without_a_zone_is_utc(local_time_in_new_york: None) -> None:
    assert retry_after("2026-03-14T15:10:00", received_at=CAME_IN) == 59.75
