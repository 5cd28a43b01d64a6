from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from dispatch.models import DispatchWindow
from testsupport.models import CronRun

pytestmark = pytest.mark.django_db

SECRET = "cron-secret-for-tests"
AUTH = {"Authorization": f"Bearer {SECRET}"}


@pytest.fixture(autouse=True)
def cron_secret(settings: Any) -> None:
    settings.CRON_SECRET = SECRET


def test_cron__get_runs_a_tick(client: Client) -> None:
    response = client.get("/api/cron/counter?tenant=acme", headers={**AUTH, "X-Correlation-Id": "trace-42"})

    assert response.status_code == 200
    body = response.json()
    assert (body["mode"], body["job"], body["correlationId"], body["duplicate"]) == (
        "inline",
        "counter",
        "trace-42",
        False,
    )
    assert body["summary"]["cron-counter"]["params"] == {"tenant": "acme"}
    assert set(body) == {
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
        "summary",
    }


def test_cron__post_works_too_and_the_second_tick_is_a_duplicate(client: Client) -> None:
    first = client.post("/api/cron/counter", headers=AUTH)
    second = client.post("/api/cron/counter", headers=AUTH)

    assert (first.status_code, second.status_code) == (200, 200)
    assert (first.json()["duplicate"], second.json()["duplicate"]) == (False, True)
    assert CronRun.objects.count() == 1


def test_cron__a_bad_correlation_id_is_replaced(client: Client) -> None:
    response = client.get("/api/cron/counter", headers={**AUTH, "X-Correlation-Id": "has space"})

    assert response.json()["correlationId"] != "has space"
    assert len(response.json()["correlationId"]) == 36


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Bearer "},
        {"Authorization": "Bearer"},
        {"Authorization": SECRET},
        {"Authorization": f"Basic {SECRET}"},
        {"Authorization": f"Bearer {SECRET}x"},
    ],
)
def test_cron__401_reveals_nothing(client: Client, headers: dict[str, str]) -> None:
    for path in ("/api/cron/counter", "/api/cron/no-such-job"):
        response = client.get(path, headers=headers)
        assert response.status_code == 401
        assert response.json() == {"error": "unauthorized"}
    assert response.json() == client.put("/api/cron/counter", headers=headers).json()
    assert not DispatchWindow.objects.exists()


def test_cron__404_for_an_unknown_job(client: Client) -> None:
    response = client.get("/api/cron/no-such-job", headers=AUTH)

    assert response.status_code == 404
    assert response.json() == {"error": "unknown cron job 'no-such-job'"}


@pytest.mark.parametrize(
    ("query", "param"),
    [("limit=ten", "limit"), ("bogus=1", "bogus"), ("tenant=a&tenant=b", "tenant"), ("region=mars", "region")],
)
def test_cron__400_names_the_bad_param(client: Client, query: str, param: str) -> None:
    response = client.get(f"/api/cron/counter?{query}", headers=AUTH)

    assert response.status_code == 400
    assert response.json()["param"] == param
    assert param in response.json()["error"]
    assert not DispatchWindow.objects.exists()


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_cron__405_for_other_methods(client: Client, method: str) -> None:
    response = getattr(client, method)("/api/cron/counter", headers=AUTH)

    assert response.status_code == 405
    assert response["Allow"] == "GET, POST"
    assert not DispatchWindow.objects.exists()


def test_cron__production_without_a_secret_refuses(client: Client, settings: Any) -> None:
    settings.CRON_SECRET = ""
    settings.DEBUG = False

    response = client.get("/api/cron/counter", headers={"Authorization": "Bearer "})

    assert response.status_code == 503
    assert not DispatchWindow.objects.exists()


def test_cron__debug_without_a_secret_accepts(client: Client, settings: Any) -> None:
    settings.CRON_SECRET = ""
    settings.DEBUG = True

    assert client.get("/api/cron/counter").status_code == 200


@pytest.mark.django_db(transaction=True)
def test_cron__database_down_is_a_quick_503_json(client: Client, settings: Any) -> None:
    from django.db import connections

    database = connections["default"]
    saved = dict(database.settings_dict)
    database.close()
    database.settings_dict["PORT"] = "1"  # nothing listens there: connection refused
    try:
        response = client.get("/api/cron/counter", headers={**AUTH, "X-Correlation-Id": "db-down"})
    finally:
        database.close()
        database.settings_dict.clear()
        database.settings_dict.update(saved)

    assert response.status_code == 503
    assert response.json() == {
        "error": "database unavailable (OperationalError)",
        "job": "counter",
        "correlationId": "db-down",
    }


@pytest.fixture
def production(settings: Any) -> None:
    """DEBUG off with a correct configuration (inline: Inngest is not configured)."""
    settings.DEBUG = False
    settings.SECRET_KEY = "a-production-secret-key-that-is-long-and-random-enough-0123456789"


@pytest.mark.usefixtures("production")
def test_cron__production_serves_when_the_configuration_is_correct(client: Client) -> None:
    assert client.get("/api/cron/counter", headers=AUTH).status_code == 200


@pytest.mark.usefixtures("production")
def test_cron__production_refuses_while_a_deploy_check_fails(client: Client, settings: Any) -> None:
    settings.SECRET_KEY = settings.DEV_SECRET_KEY
    settings.INNGEST_EVENT_KEY = "event-key"  # Inngest cloud mode, without a signing key.

    response = client.get("/api/cron/counter", headers=AUTH)

    assert response.status_code == 503
    assert response.json()["checks"] == ["orchestrator.E002", "orchestrator.E004"]
    assert "manage.py check --deploy" in response.json()["error"]
    assert not DispatchWindow.objects.exists()


@pytest.mark.usefixtures("production")
def test_cron__production_refuses_with_the_unsigned_dev_server(client: Client, settings: Any) -> None:
    settings.INNGEST_DEV = "1"

    response = client.get("/api/cron/counter", headers=AUTH)

    assert (response.status_code, response.json()["checks"]) == (503, ["orchestrator.E006"])
    assert not DispatchWindow.objects.exists()


@pytest.mark.usefixtures("production")
def test_cron__production_serves_again_once_the_setting_is_fixed(client: Client, settings: Any) -> None:
    settings.DEPLOY_ENV = "preview"
    settings.INNGEST_ENV = "production"
    assert client.get("/api/cron/counter", headers=AUTH).json()["checks"] == ["orchestrator.E003"]

    settings.INNGEST_ENV = "preview-branch"

    assert client.get("/api/cron/counter", headers=AUTH).status_code == 200


@pytest.mark.usefixtures("production")
def test_cron__refusal_comes_after_auth(client: Client, settings: Any) -> None:
    settings.SECRET_KEY = settings.DEV_SECRET_KEY

    response = client.get("/api/cron/counter", headers={"Authorization": "Bearer wrong"})

    assert (response.status_code, response.json()) == (401, {"error": "unauthorized"})


def test_cron__debug_serves_despite_deploy_errors(client: Client, settings: Any) -> None:
    settings.DEBUG = True
    settings.SECRET_KEY = settings.DEV_SECRET_KEY  # The local default.

    assert client.get("/api/cron/counter", headers=AUTH).status_code == 200
