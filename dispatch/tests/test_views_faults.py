"""The cron endpoint through a live gunicorn under faults: a killed worker, a storm of ticks, PostgreSQL refused.

Counts scale with ORCHESTRATOR_STRESS (testsupport.stress): the CI
default, or the issue's full counts (500 concurrent ticks from 4 processes).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from django.db.models import F

from conftest import EVENT_KEY, SIGNING_KEY
from dispatch.models import DispatchWindow
from testsupport.event_api import EventAPI
from testsupport.live import Gunicorn
from testsupport.procs import ROOT, child_env, release_together
from testsupport.stress import scaled

SECRET = "faults-cron-secret"
AUTH = {"Authorization": f"Bearer {SECRET}"}
PROCESS = "background/process.requested"
MAINTENANCE = "background/maintenance.requested"
STORM_PROCESSES = 4
STORM_TICKS = scaled(ci=100, full_count=500)


def server_env(event_api: EventAPI, **extra: str) -> dict[str, str]:
    """Return a production-like configuration that dispatches to the loopback event API."""
    return {
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "CRON_SECRET": SECRET,
        "INNGEST_EVENT_KEY": EVENT_KEY,
        "INNGEST_SIGNING_KEY": SIGNING_KEY,
        "INNGEST_EVENT_API_BASE_URL": event_api.url,
        **extra,
    }


@pytest.fixture
def event_api_only() -> Iterator[EventAPI]:
    """A loopback event API for a gunicorn child (the test process's own settings stay as they are)."""
    with EventAPI(event_key=EVENT_KEY) as api:
        yield api


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_cron__a_worker_killed_between_claim_and_publish_leaves_a_window_a_later_tick_completes(
    event_api_only: EventAPI,
) -> None:
    event_api = event_api_only
    event_api.behave("hang")  # the worker claims the window, then waits inside the publish
    publish_bound = 30.0
    with Gunicorn(workers=1, **server_env(event_api, INNGEST_PUBLISH_TIMEOUT_SECONDS=str(publish_bound))) as server:
        [worker] = server.wait_for_workers(1)
        # A daily window: the ticks below are seconds apart in real time and must share their window.
        url = f"{server.url}/api/cron/daily"
        answers: list[Any] = []

        def first_tick() -> None:
            try:
                answers.append(httpx.get(url, headers=AUTH, timeout=120))
            except httpx.HTTPError as exc:
                answers.append(exc)

        caller = threading.Thread(target=first_tick)
        caller.start()
        assert event_api.wait_for_request(timeout=60)
        os.kill(worker, signal.SIGKILL)  # dies mid-publish: the window row is claimed, nothing was sent
        caller.join(timeout=120)
        window = DispatchWindow.objects.get()
        assert (window.status, window.mode, window.publish_attempts) == ("pending", "dispatch", 1)
        assert isinstance(answers[0], httpx.TransportError)  # the cron caller got no answer at all

        server.wait_for_workers(1, without={worker})  # gunicorn respawned it
        too_soon = httpx.get(url, headers=AUTH, timeout=60)
        # The stale bound (twice the publish bound) passes: moved back rather than waited for.
        DispatchWindow.objects.filter(pk=window.pk).update(
            updated_at=F("updated_at") - timedelta(seconds=2 * publish_bound + 1)
        )
        event_api.behave("ok")
        later = httpx.get(url, headers=AUTH, timeout=60)

    # While the dead tick might still be publishing, another tick is a duplicate and publishes nothing.
    assert too_soon.status_code == 200, too_soon.text
    assert (too_soon.json()["duplicate"], too_soon.json()["enqueued"]) == (True, False)
    # Past the bound the window is re-claimed and completed, with the same deterministic event ids.
    assert later.status_code == 202, later.text
    body = later.json()
    assert (body["mode"], body["duplicate"], body["enqueued"]) == ("dispatch", False, True)
    key = body["dispatchKey"]
    assert body["eventIds"] == [f"cron/daily.requested:{key}"]
    assert sorted(event_api.event_ids()) == sorted(body["eventIds"])  # each event published once
    window.refresh_from_db()
    assert (window.status, window.publish_attempts, window.duplicate_ticks) == ("enqueued", 2, 1)
    assert not DispatchWindow.objects.filter(status="pending").exists()


def start_storm(url: str, threads: int) -> subprocess.Popen[str]:
    env = child_env(STORM_AUTHORIZATION=AUTH["Authorization"])
    return subprocess.Popen(
        [sys.executable, "-m", "testsupport.http_storm", url, str(threads)],
        cwd=ROOT,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_cron__a_storm_of_ticks_enqueues_each_window_once_and_publishes_each_event_once(
    event_api_only: EventAPI,
) -> None:
    event_api = event_api_only
    # At the default publish bound (1.5 s; a pending window is stale after 3 s): 4 workers and the storm's
    # threads share two busy cores, so a tick may wait seconds between reading its clock and its claim.
    with Gunicorn(workers=4, **server_env(event_api)) as server:
        url = f"{server.url}/api/cron/background-jobs"
        storms = [start_storm(url, STORM_TICKS // STORM_PROCESSES) for _ in range(STORM_PROCESSES)]
        results = release_together(storms, timeout=600)

    assert len(results) == STORM_TICKS
    statuses = Counter(result["status"] for result in results)
    print(f"\nstorm: {STORM_TICKS} ticks from {STORM_PROCESSES} processes, statuses {dict(statuses)}")
    assert set(statuses) <= {200, 202}, [
        (r["status"], r["body"].get("error"), r["body"].get("latencyMs"))
        for r in results
        if r["status"] not in (200, 202)
    ][:5]
    # A storm that straddles a minute touches two windows: each is claimed and enqueued exactly once.
    by_key: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for result in results:
        by_key[result["body"]["dispatchKey"]].append(result)
    assert 1 <= len(by_key) <= 2
    for key, answers in by_key.items():
        winners = [answer for answer in answers if not answer["body"]["duplicate"]]
        assert [winner["status"] for winner in winners] == [202], key
        assert all(answer["status"] == 200 for answer in answers if answer["body"]["duplicate"])
    windows = DispatchWindow.objects.all()
    assert {window.dispatch_key for window in windows} == set(by_key)
    for window in windows:
        assert (window.status, window.publish_attempts, window.claim) == ("enqueued", 1, 1)
        assert window.duplicate_ticks == len(by_key[window.dispatch_key]) - 1
    expected_ids = {f"{event}:{key}" for key in by_key for event in (PROCESS, MAINTENANCE)}
    published = Counter(event_api.event_ids())
    assert set(published) == expected_ids
    assert set(published.values()) == {1}  # one publish per event id


@pytest.fixture
def refused_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nothing else takes it) but not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_cron__postgresql_refusing_connections_is_a_503_json_and_health_says_so(refused_port: int) -> None:
    env = {
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "CRON_SECRET": SECRET,
        "LOG_LEVEL": "INFO",
        "DATABASE_URL": f"postgres://postgres@127.0.0.1:{refused_port}/orchestrator_unreachable",
    }
    with Gunicorn(workers=1, **env) as server:
        cron = httpx.get(
            f"{server.url}/api/cron/background-jobs", headers={**AUTH, "X-Correlation-Id": "db-down"}, timeout=60
        )
        health = httpx.get(f"{server.url}/api/health", timeout=60)
        unauthorized = httpx.get(f"{server.url}/api/cron/background-jobs", timeout=60)
    logs = [json.loads(line) for line in server.output.splitlines() if line.startswith("{")]

    assert cron.status_code == 503
    assert cron.json() == {
        "error": "database unavailable (OperationalError)",
        "job": "background-jobs",
        "correlationId": "db-down",
    }
    assert health.status_code == 503
    assert health.json()["status"] == "unavailable"
    assert health.json()["database"] == {
        "ok": False,
        "vendor": "postgresql",
        "error": "unreachable (OperationalError)",
    }
    assert health.json()["cache"]["ok"] is True
    assert unauthorized.status_code == 401  # authentication needs no database
    failure = [line for line in logs if line.get("message") == "cron call failed: database unavailable"]
    assert [(line["correlationId"], line["error"]) for line in failure] == [("db-down", "OperationalError")]
    assert not DispatchWindow.objects.exists()
