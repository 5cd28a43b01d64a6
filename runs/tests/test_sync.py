"""Syncing with self-hosted Inngest and the dev server (out of band): PUT /api/inngest, then /fn/register."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from conftest import EVENT_KEY, SELF_HOSTED_KEY
from runs.models import FunctionRun
from runs.tests.test_functions import PROCESS, enqueue, event
from testsupport.event_api import closed_port_url
from testsupport.inngest_server import InngestServer

pytestmark = pytest.mark.django_db(transaction=True)

SERVED = {
    f"orchestrator-{name}"
    for name in ("process-background-jobs", "background-maintenance", "drain-background-jobs", "reconcile-windows")
}


def test_sync__registers_every_function_and_inngest_then_runs_them(
    inngest_server: InngestServer, live_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    enqueue(2)

    with caplog.at_level(logging.INFO, logger="runs.sync"):
        sync = inngest_server.sync(f"{live_server.url}/api/inngest")

    assert (sync.error, sync.status, sync.from_sdk) == ("", 200, True)
    assert sync.body["ok"] is True
    functions = inngest_server.api.registered("orchestrator")
    assert {config["id"] for config in functions} >= SERVED
    assert {config["steps"]["step"]["runtime"]["url"].split("?")[0] for config in functions} == {
        f"{live_server.url}/api/inngest"
    }
    assert [record.getMessage() for record in caplog.records if record.name == "runs.sync"] == [
        "app registered with Inngest"
    ]
    [run] = inngest_server.executor.deliver(event(PROCESS))
    assert (run.status, run.output["succeeded"]) == ("completed", 2)
    assert FunctionRun.objects.get().status == "succeeded"


def test_sync__a_function_inngest_refuses_fails_the_sync_with_its_reason(
    inngest_server: InngestServer, live_server: Any, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.RECONCILE_CRON = "0 */5 * * * *"  # six fields: Inngest refuses the function, and so the whole app

    with caplog.at_level(logging.ERROR, logger="runs.sync"):
        sync = inngest_server.sync(f"{live_server.url}/api/inngest")

    assert sync.status == 400
    assert sync.error.startswith(
        f"Inngest refused the registration at {inngest_server.url}/fn/register: 400 At least one function is invalid "
        "(one function Inngest cannot accept refuses the whole app: run 'python manage.py check'"
    )
    assert inngest_server.api.registered("orchestrator") == []
    [record] = [record for record in caplog.records if record.name == "runs.sync"]
    assert record.getMessage().startswith("sync failed: Inngest refused the registration")
    assert (record.action, record.status) == ("inngest_sync", 400)  # type: ignore[attr-defined]


def test_sync__a_registration_refused_in_plain_text_names_its_status(
    live_server: Any, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # The app's key is not the server's; an unsigned sync (allowed here) reaches the registration, which
    # `inngest start` refuses with a plain-text 401 that the SDK alone reports as "not valid JSON".
    with InngestServer(event_key=EVENT_KEY, signing_key="ab" * 32) as server:
        settings.INNGEST_BASE_URL = server.url
        settings.INNGEST_SIGNING_KEY = SELF_HOSTED_KEY
        settings.INNGEST_DEV = ""
        settings.INNGEST_ENABLE_UNAUTHED_SYNC = True

        with caplog.at_level(logging.ERROR, logger="runs.sync"):
            response = httpx.put(f"{live_server.url}/api/inngest", timeout=30)

    assert response.status_code == 400
    assert response.json()["message"].startswith(
        f"Inngest refused the registration at {server.url}/fn/register: 401 Authentication failed "
        "(INNGEST_SIGNING_KEY must be the key Inngest was started with (inngest start --signing-key))"
    )
    assert [record.status for record in caplog.records if record.name == "runs.sync"] == [401]  # type: ignore[attr-defined]


def test_sync__inngest_unreachable_from_the_app_fails_the_sync_naming_it(
    inngest_server: InngestServer, live_server: Any, settings: Any
) -> None:
    settings.INNGEST_API_BASE_URL = unreachable = closed_port_url()

    sync = inngest_server.sync(f"{live_server.url}/api/inngest")

    assert sync.status == 400
    assert sync.error.startswith(
        f"the app could not register with Inngest: Failed request to {unreachable}/fn/register"
    )


def test_sync__an_unsigned_put_registers_nothing_in_cloud_mode(inngest_server: InngestServer, live_server: Any) -> None:
    # Anyone who reaches the URL could otherwise make the app register itself, at the URL of their Host.
    response = httpx.put(f"{live_server.url}/api/inngest", headers={"Host": "localhost:1"}, timeout=30)

    assert response.status_code == 401
    assert inngest_server.api.registrations == []


def test_sync__behind_a_proxy_registers_the_url_of_INNGEST_SERVE_ORIGIN(
    inngest_server: InngestServer, live_server: Any, settings: Any
) -> None:
    settings.INNGEST_SERVE_ORIGIN = "https://orchestrator.example.com"

    sync = inngest_server.sync(f"{live_server.url}/api/inngest")

    assert sync.error == ""
    urls = {
        config["steps"]["step"]["runtime"]["url"].split("?")[0]
        for config in inngest_server.api.registered("orchestrator")
    }
    assert urls == {"https://orchestrator.example.com/api/inngest"}


def test_sync__the_dev_server_from_a_container_registers_the_url_it_called(live_server: Any, settings: Any) -> None:
    port = live_server.url.rsplit(":", 1)[1]
    with InngestServer(event_key=EVENT_KEY, signing_key=None) as dev_server:  # `inngest dev -u`: nothing signed
        settings.DEBUG = True  # dev mode is served only with DEBUG on
        settings.ALLOWED_HOSTS = settings.LOCAL_HOSTS  # what settings give DEBUG when ALLOWED_HOSTS is unset
        settings.INNGEST_DEV = dev_server.url
        settings.INNGEST_SIGNING_KEY = ""

        sync = dev_server.sync(f"{live_server.url}/api/inngest", host=f"host.docker.internal:{port}")

    assert (sync.error, sync.status) == ("", 200)
    [url] = {
        config["steps"]["step"]["runtime"]["url"].split("?")[0] for config in dev_server.api.registered("orchestrator")
    }
    assert url == f"http://host.docker.internal:{port}/api/inngest"


def test_inngest_functions__says_when_inngest_cannot_say(settings: Any) -> None:
    settings.INNGEST_SIGNING_KEY, settings.INNGEST_DEV = SELF_HOSTED_KEY, ""
    settings.INNGEST_BASE_URL = unreachable = closed_port_url()

    with pytest.raises(CommandError, match=f"Inngest's API at {unreachable}/v1/apps/orchestrator/functions cannot be"):
        call_command("inngest_functions")
