"""Drain requests: in dispatch mode, enqueueing a job due now asks Inngest for a drain of that second, once."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from dispatch.drain import drain_key, drain_key_problem
from jobs.services import job_enqueue
from testsupport.event_api import EventAPI

pytestmark = pytest.mark.django_db(transaction=True)

EVENT = "background/drain.requested"


def drain_id(second: datetime) -> str:
    return f"{EVENT}:{drain_key(second)}"


def a_second(offset: int) -> datetime:
    """Return a whole second `offset` seconds from now: each test asks for seconds no other test asks for."""
    return timezone.now().replace(microsecond=0) + timedelta(seconds=offset)


def test_job_enqueue__asks_for_one_drain_per_second_after_the_enqueue_commits(event_api: EventAPI) -> None:
    second = a_second(11)
    for _ in range(3):
        job_enqueue(kind="test.record", now=second + timedelta(milliseconds=100))
    job_enqueue(kind="test.record", now=second + timedelta(seconds=1))

    assert event_api.wait_for_events(2)

    # The requests are published in order: the second one is the next second's, so the
    # two more enqueues of the first second asked for nothing more.
    assert event_api.event_ids() == [drain_id(second), drain_id(second + timedelta(seconds=1))]
    [first, _] = event_api.events
    assert first["name"] == EVENT
    assert first["data"]["dispatchKey"] == f"drain:background-jobs:{second:%Y-%m-%dT%H:%M:%S}"
    assert (first["data"]["source"], first["data"]["dispatchWindowSeconds"]) == ("enqueue", 1)


def test_job_enqueue__a_rolled_back_enqueue_asks_for_nothing(event_api: EventAPI) -> None:
    rolled_back, committed = a_second(21), a_second(22)
    with pytest.raises(RuntimeError), transaction.atomic():
        job_enqueue(kind="test.record", now=rolled_back)
        raise RuntimeError("the caller's transaction fails")
    job_enqueue(kind="test.record", now=committed)

    assert event_api.wait_for_events(1)

    assert event_api.event_ids() == [drain_id(committed)]


@pytest.mark.parametrize(
    ("key", "problem"),
    [
        ("drain:background-jobs:2026-03-14T15:09:26", ""),
        ("drain:background-jobs:2026-03-14T15:10:26", ""),  # the enqueuing host's clock ran ahead
        ("drain:background-jobs:2026-03-14T15:10:27", "names a second more than a minute ahead"),
        ("cron:background-jobs:2026-03-14T15:09", "is not a drain key"),
        ("drain:background-jobs:2026-02-30T15:09:26", "names no second"),
    ],
)
def test_drain_key_problem(key: str, problem: str, now: datetime) -> None:
    assert drain_key_problem(key, now=now).startswith(problem) if problem else drain_key_problem(key, now=now) == ""
