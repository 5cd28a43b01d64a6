from __future__ import annotations

from datetime import datetime
from typing import Any

import pytest
from django.core.cache import caches
from django_redis import get_redis_connection

from runs.status import status_key, status_read, status_write


def test_status_write__stores_json_under_the_exact_key_with_a_ttl(now: datetime) -> None:
    assert status_write(scope="acme", job_name="process-background-jobs", now=now, status="running", attempt=1)

    raw = get_redis_connection("default").get("job:v1:acme:process-background-jobs")
    ttl = get_redis_connection("default").ttl("job:v1:acme:process-background-jobs")
    assert raw is not None
    assert 7 * 24 * 3600 - 5 <= ttl <= 7 * 24 * 3600
    blob = status_read(scope="acme", job_name="process-background-jobs")
    assert blob is not None
    assert (blob["status"], blob["attempt"], blob["updatedAt"]) == ("running", 1, "2026-03-14T15:09:26.500Z")
    assert set(blob) >= {"startedAt", "finishedAt", "durationMs", "lastError", "dispatchKey", "correlationId", "runId"}


def test_status_write__merges_fields(now: datetime) -> None:
    status_write(scope="global", job_name="x", now=now, status="running", runId="r1")
    status_write(scope="global", job_name="x", now=now, status="succeeded", durationMs=12)

    blob = status_read(scope="global", job_name="x")
    assert blob is not None
    assert (blob["status"], blob["runId"], blob["durationMs"]) == ("succeeded", "r1", 12)


@pytest.mark.parametrize("scope", ["a:b", "*", "a\nb", "", "x" * 65, "tenant/1", "a b"])
def test_status_key__refuses_scopes_that_could_reach_another_key(scope: str) -> None:
    with pytest.raises(ValueError, match="scope"):
        status_key(scope, "job")


def test_status_write__refuses_unknown_fields(now: datetime) -> None:
    with pytest.raises(ValueError, match="unknown status blob fields"):
        status_write(scope="global", job_name="x", now=now, colour="red")


def test_status_write__a_redis_outage_is_logged_not_raised(now: datetime, settings: Any, caplog: Any) -> None:
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",  # nothing listens on port 1
            "KEY_FUNCTION": "core.cache.raw_key",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        }
    }
    try:
        written = status_write(scope="global", job_name="x", now=now, status="running")
        read = status_read(scope="global", job_name="x")
    finally:
        caches["default"].close()

    assert (written, read) == (False, None)
    assert "status blob not written: cache unavailable" in caplog.text
