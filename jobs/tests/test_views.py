from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client, override_settings
from freezegun import freeze_time

from jobs.models import BackgroundJob
from jobs.services import MAX_PAYLOAD_BYTES

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("token")]

TOKEN = "jobs-token-for-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def token(settings: Any) -> None:
    settings.JOBS_API_TOKEN = TOKEN


def post(client: Client, body: object, headers: dict[str, str] | None = None) -> Any:
    data = body if isinstance(body, str | bytes) else json.dumps(body)
    return client.post("/api/jobs", data=data, content_type="application/json", headers=headers or AUTH)


@freeze_time("2026-03-14T15:09:26Z")
def test_enqueue__201_with_the_job(client: Client) -> None:
    response = post(
        client,
        {
            "kind": "test.record",
            "payload": {"n": 1},
            "tenant": "acme",
            "dedupeKey": "k1",
            "runAfter": "2026-04-01T00:00:00+02:00",
            "maxAttempts": 2,
            "priority": 5,
        },
    )

    assert response.status_code == 201
    job = BackgroundJob.objects.get()
    assert response.json() == {
        "id": job.pk,
        "kind": "test.record",
        "tenant": "acme",
        "status": "pending",
        "dedupeKey": "k1",
        "runAfter": "2026-03-31T22:00:00.000Z",
        "maxAttempts": 2,
        "priority": 5,
        "created": True,
    }


def test_enqueue__200_when_deduplicated(client: Client) -> None:
    first = post(client, {"kind": "test.record", "dedupeKey": "k"})
    second = post(client, {"kind": "test.record", "dedupeKey": "k"})

    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["created"] is False


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ("not json", "body"),
        ("[1, 2]", "body"),
        ({"payload": {}}, "kind"),
        ({"kind": "nope"}, "kind"),
        ({"kind": "test.record", "extra": 1}, "extra"),
        ({"kind": "test.record", "runAfter": "yesterday"}, "runAfter"),
        ({"kind": "test.record", "runAfter": "2030-01-01T00:00:00"}, "runAfter"),
        ({"kind": "test.record", "runAfter": 17}, "runAfter"),
        ({"kind": "test.record", "maxAttempts": "5"}, "maxAttempts"),
        ({"kind": "test.record", "priority": None}, "priority"),
        ({"kind": "test.record", "tenant": "a*b"}, "tenant"),
        ({"kind": "test.record", "dedupeKey": 5}, "dedupeKey"),
        ('{"kind": "test.record", "payload": NaN}', "payload"),
        ("[" * 100_000 + "]" * 100_000, "body"),
    ],
)
def test_enqueue__400_names_the_bad_field_and_writes_nothing(client: Client, body: object, field: str) -> None:
    response = post(client, body)

    assert response.status_code == 400
    assert response.json()["field"] == field
    assert response.json()["error"].startswith(f"{field}: ")
    assert not BackgroundJob.objects.exists()


def test_enqueue__413_for_a_body_over_256_kib(client: Client) -> None:
    body = json.dumps({"kind": "test.record", "payload": {"blob": "x" * MAX_PAYLOAD_BYTES}})

    response = post(client, body)

    assert response.status_code == 413
    assert response.json() == {"error": "request body is larger than 256 KiB"}
    assert not BackgroundJob.objects.exists()


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Bearer "}, {"Authorization": TOKEN}],
)
def test_enqueue__401_without_the_token(client: Client, headers: dict[str, str]) -> None:
    response = client.post("/api/jobs", data="{}", content_type="application/json", headers=headers)

    assert response.status_code == 401
    assert response.json() == {"error": "unauthorized"}


def test_enqueue__405_for_get(client: Client) -> None:
    response = client.get("/api/jobs", headers=AUTH)

    assert response.status_code == 405
    assert response["Allow"] == "POST"


@override_settings(JOBS_API_TOKEN="", DEBUG=False)
def test_enqueue__503_in_production_without_a_token(client: Client) -> None:
    response = post(client, {"kind": "test.record"}, headers={"Authorization": "Bearer "})

    assert response.status_code == 503
    assert not BackgroundJob.objects.exists()
