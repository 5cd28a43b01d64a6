"""The cron endpoint against an event API that is down, hangs, is slow or answers garbage: the modes of docs/cron.md.

Every answer reports its `latencyMs`; these tests assert modes and states, not
durations (the bound's timing is measured by the benchmarks, not asserted here).
"""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from conftest import EVENT_KEY, SIGNING_KEY
from dispatch.models import DispatchWindow
from testsupport.event_api import EventAPI, closed_port_url

pytestmark = pytest.mark.django_db

SECRET = "publish-faults-cron-secret"
AUTH = {"Authorization": f"Bearer {SECRET}"}
BODY_KEYS = {
    "mode",
    "job",
    "dispatchKey",
    "correlationId",
    "requestedAt",
    "dispatchWindowStart",
    "dispatchWindowSeconds",
    "enqueued",
    "duplicate",
    "eventIds",
    "latencyMs",
}
# A bound that a loaded two-core machine keeps comfortably when the event API answers in half of it.
BOUND = 2.0


@pytest.fixture(autouse=True)
def cron_secret(settings: Any) -> None:
    settings.CRON_SECRET = SECRET


def tick() -> Any:
    return Client().get("/api/cron/background-jobs", headers=AUTH)


@pytest.mark.parametrize(
    ("behaviour", "bound", "error"),
    [
        # Shapes the SDK retries end at the bound, whatever it is: a short one keeps the suite quick.
        ("hang", 0.5, "publish timed out after 0.5 s"),
        ("error500", 0.5, "publish timed out after 0.5 s"),
        ("truncated", 0.5, ""),
        ("reset", 0.5, ""),
        ("refused", 0.5, "connection refused by the event API at http://127.0.0.1:"),
        # Shapes answered at once keep their own error, given a bound a loaded machine cannot miss.
        ("html", BOUND, "event API answered with an unreadable body: JSONDecodeError"),
        ("badjson", BOUND, "event API answered with an unreadable body: ValidationError"),
        ("unauthorized", BOUND, "event API refused the events: SendEventsError: Event key not found"),
    ],
)
def test_cron__an_event_api_that_fails_is_503_dispatch_failed_within_the_bound(
    event_api: EventAPI, settings: Any, behaviour: Any, bound: float, error: str
) -> None:
    settings.INNGEST_PUBLISH_TIMEOUT_SECONDS = bound
    if behaviour == "refused":
        settings.INNGEST_EVENT_API_BASE_URL = closed_port_url()
    else:
        event_api.behave(behaviour)

    response = tick()

    assert response.status_code == 503, response.content[:300]
    body = response.json()
    print(f"\n{behaviour}: {response.status_code} {body['mode']} latencyMs={body['latencyMs']} error={body['error']!r}")
    assert set(body) == BODY_KEYS | {"error"}
    assert (body["mode"], body["enqueued"], body["duplicate"]) == ("dispatch-failed", False, False)
    assert body["error"].startswith(error)
    assert "\n" not in body["error"] and "Traceback" not in body["error"]
    assert EVENT_KEY not in body["error"] and SIGNING_KEY not in body["error"]
    window = DispatchWindow.objects.get()
    assert (window.status, window.error) == ("dispatch_failed", body["error"])


def test_cron__a_slow_event_api_just_inside_the_bound_is_202_dispatch(event_api: EventAPI, settings: Any) -> None:
    settings.INNGEST_PUBLISH_TIMEOUT_SECONDS = BOUND
    event_api.behave("slow", delay=BOUND / 2)

    response = tick()

    assert response.status_code == 202, response.content[:300]
    body = response.json()
    print(f"\nslow {BOUND / 2:g} s (bound {BOUND:g} s): {body['mode']} latencyMs={body['latencyMs']}")
    assert (body["mode"], body["enqueued"]) == ("dispatch", True)
    assert sorted(event_api.event_ids()) == sorted(body["eventIds"])
    assert DispatchWindow.objects.get().status == "enqueued"


def test_cron__a_slow_event_api_just_past_the_bound_is_503_ended_by_the_bound(
    event_api: EventAPI, settings: Any
) -> None:
    settings.INNGEST_PUBLISH_TIMEOUT_SECONDS = BOUND
    event_api.behave("slow", delay=BOUND + 0.5)

    response = tick()

    assert response.status_code == 503, response.content[:300]
    body = response.json()
    print(f"\nslow {BOUND + 0.5:g} s (bound {BOUND:g} s): {body['mode']} latencyMs={body['latencyMs']}")
    assert body["mode"] == "dispatch-failed"
    assert body["error"] == "publish timed out after 2 s"  # the dispatcher's bound ended it, not the SDK
    assert DispatchWindow.objects.get().status == "dispatch_failed"


def test_cron__a_refused_connection_is_503_saying_so_and_naming_the_url(event_api: EventAPI, settings: Any) -> None:
    settings.INNGEST_EVENT_API_BASE_URL = url = closed_port_url()

    response = tick()

    assert response.status_code == 503
    assert response.json()["mode"] == "dispatch-failed"
    assert response.json()["error"] == (
        f"connection refused by the event API at {url}: is it running? (docs/inngest.md, 'Connecting')"
    )


def test_cron__the_dev_server_not_running_is_a_refused_connection_not_a_timeout(settings: Any) -> None:
    settings.DEBUG = True  # the dev server is for local use
    settings.INNGEST_EVENT_KEY = ""
    settings.INNGEST_EVENT_API_BASE_URL = ""
    settings.INNGEST_DEV = url = closed_port_url()  # INNGEST_DEV=1 is this on 127.0.0.1:8288
    settings.INNGEST_PUBLISH_TIMEOUT_SECONDS = 0.5

    response = tick()

    assert (response.status_code, response.json()["mode"]) == (503, "dispatch-failed")
    assert response.json()["error"].startswith(f"connection refused by the event API at {url}")
    assert "timed out" not in response.json()["error"]
