"""Publishing against Inngest's event API as it answers: its own ids, its limits, a refusal part-way through a list."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import httpx
import inngest
import pytest

from conftest import EVENT_KEY
from core.inngest import client_for, current_config
from dispatch.models import DispatchWindow
from dispatch.publish import PublishError, publish_events
from dispatch.registry import get_cron_job
from dispatch.services import dispatch_tick
from testsupport.event_api import EventAPI
from testsupport.event_intake import MAX_EVENT_BYTES, MAX_EVENTS

pytestmark = pytest.mark.django_db


def publish(events: list[inngest.Event]) -> list[str]:
    return publish_events(events, client=client_for(current_config()), timeout=5.0)


def test_dispatch__records_its_own_event_ids_whatever_ids_inngest_answers(event_api: EventAPI, now: datetime) -> None:
    job = get_cron_job("background-jobs")
    assert job is not None

    result = dispatch_tick(job=job, now=now, source="cron", correlation_id="corr-1")

    window = DispatchWindow.objects.get()
    assert result.status_code == 202
    assert sorted(window.event_ids) == sorted(result.body["eventIds"]) == sorted(event_api.event_ids())
    ids = publish([inngest.Event(name="orders/placed", id="order-1", data={})])
    assert len(ids) == 1 and ids != ["order-1"]  # the event API answers ids of its own (ULIDs), not the ids sent
    assert len(ids[0]) == 26


def test_publish__an_event_inngest_refuses_fails_the_publish_with_its_reason_after_the_ones_before(
    event_api: EventAPI,
) -> None:
    events = [inngest.Event(name="orders/placed", id="order-1"), inngest.Event(name="inngest/internal", id="x")]

    with pytest.raises(PublishError, match="event name is reserved for internal use: inngest/internal"):
        publish(events)

    assert event_api.event_ids() == ["order-1"]  # the event before the refused one was taken


def test_publish__an_event_over_3_mib_is_refused(event_api: EventAPI) -> None:
    big = inngest.Event(name="orders/placed", data={"blob": "x" * MAX_EVENT_BYTES})

    with pytest.raises(PublishError, match=f"Event is over the max size: Max {MAX_EVENT_BYTES} bytes"):
        publish([big])

    assert event_api.events == []


def test_publish__more_than_5000_events_in_one_request_are_refused_past_the_limit(event_api: EventAPI) -> None:
    events = [inngest.Event(name="orders/placed", id=f"order-{n}") for n in range(MAX_EVENTS + 1)]

    with pytest.raises(PublishError, match=f"Cannot have more than {MAX_EVENTS} events in a batch"):
        publish(events)

    assert len(event_api.events) == MAX_EVENTS


@pytest.mark.parametrize(
    ("body", "error", "taken"),
    [
        ({"name": "", "data": {}}, "event name is empty", 0),
        ({"name": "a/b", "ts": 1000}, "timestamp is before Jan 1, 1980", 0),
        ({"name": "a/b", "ts": 4_102_444_800_000}, "timestamp is after Jan 1, 2100", 0),
        ({"name": "a/b", "ts": "yesterday"}, "json: cannot unmarshal", 0),
        ([{"name": "a/b"}, {"name": "INNGEST/x"}], "event name is reserved for internal use: INNGEST/x", 1),
        ("an event", "Request body must contain an event object or an array of event objects", 0),
    ],
)
def test_event_api__answers_a_refused_request_400_with_the_ids_of_the_events_taken(
    event_api: EventAPI, body: Any, error: str, taken: int
) -> None:
    response = httpx.post(f"{event_api.url}/e/{EVENT_KEY}", content=json.dumps(body))

    assert response.status_code == 400
    answer = response.json()
    assert (answer["status"], answer["error"].startswith(error)) == (400, True)
    assert len(event_api.events) == taken
    assert len(answer["ids"]) == max(taken, 1)  # as the server slices them: one empty id when none was taken
