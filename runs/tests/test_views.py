"""/api/inngest: only Inngest's signed, fresh calls reach the functions (cloud mode), and what it says unconfigured."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from django.test import Client

from conftest import SIGNING_KEY
from runs.models import FunctionRun
from runs.tests.test_functions import PROCESS, enqueue, event
from testsupport.executor import Executor
from testsupport.models import HandlerRun

pytestmark = pytest.mark.django_db(transaction=True)


def call_body(run_id: str, trigger: dict[str, Any]) -> dict[str, Any]:
    """Return the body of Inngest's first call of a run of `trigger` (no step done yet)."""
    return {
        "ctx": {"attempt": 0, "disable_immediate_execution": False, "run_id": run_id, "stack": {"stack": []}},
        "event": trigger,
        "events": [trigger],
        "steps": {},
        "use_api": False,
    }


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Inngest-Signature": "t=1700000000&s=" + "0" * 64},
        {"X-Inngest-Signature": "garbage"},
    ],
)
def test_serve__refuses_unsigned_or_badly_signed_calls(
    executor: Executor, live_server: Any, headers: dict[str, str]
) -> None:
    enqueue(1)
    body = call_body("01X", event(PROCESS))

    response = httpx.post(
        f"{live_server.url}/api/inngest",
        params={"fnId": "orchestrator-process-background-jobs", "stepId": "step"},
        json=body,
        headers=headers,
    )

    assert response.status_code == 401
    assert not FunctionRun.objects.exists()
    assert HandlerRun.objects.count() == 0


def test_serve__a_signature_from_another_key_is_refused(live_server: Any, settings: Any) -> None:
    settings.INNGEST_SIGNING_KEY = SIGNING_KEY
    settings.INNGEST_DEV = ""
    impostor = Executor(serve_url=f"{live_server.url}/api/inngest", signing_key="signkey-test-" + "ab" * 32)

    with pytest.raises(AssertionError, match="sync answered 401"):
        impostor.sync()
    impostor.stop()


def test_serve__cloud_mode_without_a_signing_key_answers_503(client: Client, settings: Any) -> None:
    settings.INNGEST_SIGNING_KEY = ""
    settings.INNGEST_DEV = ""

    response = client.post("/api/inngest?fnId=x", data="{}", content_type="application/json")

    assert response.status_code == 503
    assert "INNGEST_SIGNING_KEY" in response.json()["error"]


def test_serve__dev_mode_answers_the_dev_servers_inspection(client: Client, settings: Any) -> None:
    settings.DEBUG = True  # Local use: dev mode is served only with DEBUG on.
    settings.INNGEST_SIGNING_KEY = ""
    settings.INNGEST_DEV = "1"

    response = client.get("/api/inngest")

    assert response.status_code == 200
    assert response.json()["mode"] == "dev"
    assert response.json()["function_count"] >= 5


@pytest.mark.parametrize("signing_key", ["", SIGNING_KEY])
def test_serve__dev_mode_without_debug_refuses_every_call_and_runs_nothing(
    live_server: Any, settings: Any, signing_key: str
) -> None:
    settings.INNGEST_DEV = "1"  # DEBUG is off, as in production: dev mode would verify no signature.
    settings.INNGEST_SIGNING_KEY = signing_key
    key = "cron:background-jobs:2099-01-01T00:00"  # a future window, pre-claimed if this call ran
    body = call_body("01ANYONE", event("background/maintenance.requested", key))

    call = httpx.post(
        f"{live_server.url}/api/inngest",
        params={"fnId": "orchestrator-background-maintenance", "stepId": "step"},
        json=body,
    )
    inspection = httpx.get(f"{live_server.url}/api/inngest")
    sync = httpx.put(f"{live_server.url}/api/inngest")

    assert [call.status_code, inspection.status_code, sync.status_code] == [503, 503, 503]
    error = call.json()["error"]
    assert "INNGEST_DEV" in error
    assert "INNGEST_SIGNING_KEY" in error
    assert "DEBUG" in error
    assert not FunctionRun.objects.exists()


@pytest.mark.parametrize("age", [-3600, 301, 3600])
def test_serve__refuses_a_correctly_signed_call_from_too_long_ago(
    executor: Executor, live_server: Any, age: int
) -> None:
    import jcs

    enqueue(1)
    body = jcs.canonicalize(call_body("01OLD", event(PROCESS)))
    headers = executor._headers(body, signed_at=int(time.time()) - age)

    response = httpx.post(
        f"{live_server.url}/api/inngest",
        params={"fnId": "orchestrator-process-background-jobs", "stepId": "step"},
        content=body,
        headers=headers,
    )

    assert response.status_code == 401
    assert not FunctionRun.objects.exists()
    assert HandlerRun.objects.count() == 0


def test_serve__accepts_a_correctly_signed_call_within_the_window(executor: Executor, live_server: Any) -> None:
    import jcs

    body = jcs.canonicalize(call_body("01NEW", event(PROCESS)))
    headers = executor._headers(body, signed_at=int(time.time()) - 200)

    response = httpx.post(
        f"{live_server.url}/api/inngest",
        params={"fnId": "orchestrator-process-background-jobs", "stepId": "step"},
        content=body,
        headers=headers,
    )

    assert response.status_code == 206  # the claim step ran
    assert FunctionRun.objects.get().run_id == "01NEW"
