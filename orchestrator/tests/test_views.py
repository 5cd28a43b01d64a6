from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.db import DEFAULT_DB_ALIAS, connections
from django.test import Client
from freezegun import freeze_time

from dispatch.models import DispatchWindow
from runs.models import FunctionRun

pytestmark = pytest.mark.django_db

SECRET = "cron-secret-for-tests"
AUTH = {"Authorization": f"Bearer {SECRET}"}


@pytest.fixture
def database_down(closed_port: int) -> Iterator[None]:
    """Point the default connection at a closed port, as if PostgreSQL were stopped."""
    real = connections[DEFAULT_DB_ALIAS]
    bad = type(real)({**real.settings_dict, "PORT": str(closed_port)}, DEFAULT_DB_ALIAS)
    connections[DEFAULT_DB_ALIAS] = bad
    try:
        yield
    finally:
        connections[DEFAULT_DB_ALIAS] = real
        bad.close()


def test_health__200_when_database_and_cache_answer(client: Client) -> None:
    response = client.get("/api/health")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert (body["database"]["ok"], body["database"]["vendor"]) == (True, "postgresql")
    assert (body["cache"]["ok"], body["cache"]["backend"]) == (True, "RedisCache")
    assert response["Cache-Control"].startswith("max-age=0")


@pytest.mark.usefixtures("database_down")
def test_health__503_when_the_database_is_down(client: Client, closed_port: int) -> None:
    response = client.get("/api/health")

    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["database"] == {"ok": False, "vendor": "postgresql", "error": "unreachable (OperationalError)"}
    assert body["cache"]["ok"] is True
    assert str(closed_port) not in response.content.decode()  # No connection details, no stack trace.


@pytest.mark.usefixtures("cache_down")
def test_health__503_when_the_cache_is_down(client: Client, closed_port: int) -> None:
    response = client.get("/api/health")

    assert response.status_code == 503
    body = response.json()
    assert (body["status"], body["database"]["ok"]) == ("unavailable", True)
    assert body["cache"] == {"ok": False, "backend": "RedisCache", "error": "unreachable (ConnectionError)"}
    assert str(closed_port) not in response.content.decode()


@pytest.mark.usefixtures("database_down")
@pytest.mark.parametrize(
    ("method", "path", "error"),
    [
        ("get", "/api/health", None),
        ("get", "/api/status", "database unavailable (OperationalError)"),
        ("get", "/metrics", "database unavailable (OperationalError)"),
        ("post", "/api/jobs", "database unavailable (OperationalError)"),
        ("get", "/api/cron/counter", "database unavailable (OperationalError)"),
    ],
)
def test_json_endpoints__answer_503_json_when_the_database_is_down(
    client: Client, settings: Any, closed_port: int, method: str, path: str, error: str | None
) -> None:
    settings.CRON_SECRET = settings.METRICS_TOKEN = settings.JOBS_API_TOKEN = SECRET
    job = {"kind": "demo.echo", "payload": {"kwargs": {"message": "hi"}}}

    if method == "post":
        response = client.post(path, job, content_type="application/json", headers=AUTH)
    else:
        response = client.get(path, headers=AUTH)

    assert (response.status_code, response["Content-Type"]) == (503, "application/json")
    if error is not None:
        assert response.json()["error"] == error
    assert str(closed_port) not in response.content.decode()  # No connection details, no stack trace.


def test_health__needs_no_auth_and_refuses_writes(client: Client, settings: Any) -> None:
    settings.CRON_SECRET = SECRET

    assert client.get("/api/health", headers={"Authorization": "Bearer wrong"}).status_code == 200
    response = client.post("/api/health")
    assert (response.status_code, response["Allow"]) == (405, "GET, HEAD")


@pytest.fixture
def cron_secret(settings: Any) -> None:
    settings.CRON_SECRET = SECRET


@pytest.mark.usefixtures("cron_secret")
@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {SECRET}"}])
def test_status__401_without_the_cron_secret(client: Client, headers: dict[str, str]) -> None:
    response = client.get("/api/status", headers=headers)

    assert (response.status_code, response.json()) == (401, {"error": "unauthorized"})


def test_status__503_in_production_without_a_cron_secret(client: Client, settings: Any) -> None:
    settings.CRON_SECRET = ""
    settings.DEBUG = False

    assert client.get("/api/status").status_code == 503


@pytest.mark.usefixtures("cron_secret")
def test_status__answers_the_report_with_pass_or_fail(
    client: Client, now: datetime, make_window: Callable[..., DispatchWindow], make_run: Callable[..., FunctionRun]
) -> None:
    make_window(latency_ms=40, created_at=now - timedelta(minutes=5))
    with freeze_time(now):
        passing = client.get("/api/status?since=15m", headers=AUTH)
    make_run(dispatch_key="cron:background-jobs:2026-03-14T15:00")
    make_run(dispatch_key="cron:background-jobs:2026-03-14T15:00:again-1")  # a key no tick makes ran it again
    with freeze_time(now):
        failing = client.get("/api/status", headers=AUTH)

    assert passing.status_code == failing.status_code == 200
    assert (passing.json()["pass"], passing.json()["period"], passing.json()["periodSeconds"]) == (True, "15m", 900)
    assert passing.json()["metrics"]["dispatchLatencyP95Ms"] == {
        "value": 40,
        "unit": "ms",
        "threshold": 2000.0,
        "pass": True,
        "setting": "SLO_DISPATCH_P95_MS",
        "windows": 1,
    }
    assert (failing.json()["pass"], failing.json()["failed"], failing.json()["period"]) == (
        False,
        ["duplicateRuns"],
        "24h",
    )


@pytest.mark.usefixtures("cron_secret")
def test_status__trigger_now_on_a_window_that_ran_passes_and_is_reported(
    client: Client, make_staff: Callable[..., User]
) -> None:
    call_command("dispatch_tick", "counter", "--json", stdout=StringIO())  # the window runs
    operator = Client()
    operator.force_login(make_staff("operator", "dispatch.view_cronjobstate", "runs.triage_deadletter"))
    triggered = operator.post("/admin/dispatch/cronjobstate/counter/trigger/")  # and runs again, deliberately

    response = client.get("/api/status", headers=AUTH)

    assert triggered.status_code == 302
    assert FunctionRun.objects.filter(function_id="cron-counter", status="succeeded").count() == 2
    body = response.json()
    assert (response.status_code, body["pass"], body["failed"]) == (200, True, [])
    manual = body["metrics"]["manualReruns"]
    assert manual == {"value": 1, "unit": "runs", "threshold": None, "pass": None, "windows": 1}
    assert body["metrics"]["duplicateRuns"]["value"] == 0


@pytest.mark.usefixtures("cron_secret")
@pytest.mark.parametrize("since", ["", "24", "h", "1.5h", "-1h", "0m", "400d", "24 hours"])
def test_status__400_for_a_bad_since(client: Client, since: str) -> None:
    response = client.get("/api/status", {"since": since}, headers=AUTH)

    assert response.status_code == 400
    assert response.json()["param"] == "since"
    assert response.json()["error"].startswith("since: ")


@pytest.mark.usefixtures("cron_secret")
@pytest.mark.parametrize(
    ("query", "error", "param"),
    [
        ("period=1h", "param 'period' is not accepted by /api/status (accepted: since)", "period"),
        ("since=1h&since=2h", "param 'since' is given more than once", "since"),
    ],
)
def test_status__refuses_an_unknown_or_repeated_parameter_as_the_cron_view_does(
    client: Client, query: str, error: str, param: str
) -> None:
    response = client.get(f"/api/status?{query}", headers=AUTH)

    assert (response.status_code, response.json()) == (400, {"error": error, "param": param})


def test_status__an_empty_period_is_explained(client: Client, settings: Any) -> None:
    settings.CRON_SECRET = "secret"

    response = client.get("/api/status?since=0m", headers={"Authorization": "Bearer secret"})

    assert response.json()["error"] == (
        "since: '0m' is an empty period (it covers no time at all): write at least 1s, e.g. 15m, 24h or 7d"
    )


@pytest.mark.parametrize("path", ["/api/health", "/api/status", "/metrics"])
@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_read_only_endpoints__any_other_method_is_a_json_405_not_a_csrf_page(
    settings: Any, path: str, method: str
) -> None:
    settings.CRON_SECRET = settings.METRICS_TOKEN = "secret"
    client = Client(enforce_csrf_checks=True)  # as a browser or curl meets them

    response = getattr(client, method)(path, headers={"Authorization": "Bearer secret"})

    assert response.status_code == 405
    assert response["Content-Type"] == "application/json"
    assert response.json()["error"] == f"method {method.upper()} not allowed; use GET"
