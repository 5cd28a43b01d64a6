"""Fixtures shared by every app's tests."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from django.core.cache import cache, caches
from hypothesis import settings as hypothesis_settings

from core.errors import error_fingerprint
from jobs.models import BackgroundJob
from testsupport.admin import STAFF_PASSWORD
from testsupport.event_api import EventAPI
from testsupport.executor import Executor
from testsupport.inngest_server import InngestServer
from testsupport.stress import full

# Property tests: no deadline (the machine is shared, timings are not the point),
# no example database in the work tree; in CI the examples are derandomized, so a
# run's outcome does not depend on luck. ORCHESTRATOR_STRESS=full explores freely.
hypothesis_settings.register_profile("ci", deadline=None, database=None, derandomize=True, print_blob=True)
hypothesis_settings.register_profile("full", deadline=None, database=None, print_blob=True)
hypothesis_settings.load_profile("full" if full() else "ci")


@pytest.fixture(autouse=True)
def _empty_cache() -> Iterator[None]:
    """Start and end every test with an empty cache (the Redis db of the test run)."""
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so nothing else takes it) but not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def cache_down(settings: Any, closed_port: int) -> Iterator[None]:
    """Point the default cache at a Redis port where nothing listens (the shared Redis keeps running)."""
    settings.CACHES = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": f"redis://127.0.0.1:{closed_port}/0",
            "KEY_FUNCTION": "core.cache.raw_key",
            "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 0.25, "SOCKET_TIMEOUT": 0.5},
        }
    }
    try:
        yield
    finally:
        caches["default"].close()


@pytest.fixture
def reap() -> Iterator[Callable[[subprocess.Popen[str]], subprocess.Popen[str]]]:
    """Return a function that registers a child process to be killed at teardown if it is still running.

    A failed assertion must not leave a worker behind holding row locks: the
    teardown's flush of the tables would wait for it forever.
    """
    children: list[subprocess.Popen[str]] = []

    def register(child: subprocess.Popen[str]) -> subprocess.Popen[str]:
        children.append(child)
        return child

    yield register
    for child in children:
        if child.poll() is None:
            child.kill()
        child.communicate(timeout=60)


@pytest.fixture
def now() -> datetime:
    """A fixed instant, 2026-03-14 15:09:26.5 UTC, for tests that pass time in."""
    return datetime(2026, 3, 14, 15, 9, 26, 500000, tzinfo=UTC)


@pytest.fixture
def make_job(now: datetime) -> Callable[..., BackgroundJob]:
    """Create a pending job directly (bypassing enqueue validation) for runner tests."""

    def make(**fields: Any) -> BackgroundJob:
        fields.setdefault("kind", "test.record")
        fields.setdefault("run_after", now)
        fields.setdefault("created_at", now)
        return BackgroundJob.objects.create(**fields)

    return make


# --- Inngest on loopback (docs/inngest.md, "How the Inngest side is tested") -------

EVENT_KEY = "test-event-key"
SIGNING_KEY = "signkey-test-" + "5e" * 32
SELF_HOSTED_KEY = "5e" * 32  # what `inngest start --signing-key` accepts: even-length hex, no prefix


@pytest.fixture
def event_api(settings: Any) -> Iterator[EventAPI]:
    """A loopback event API, and settings that make the dispatcher publish to it."""
    with EventAPI(event_key=EVENT_KEY) as api:
        settings.INNGEST_EVENT_KEY = EVENT_KEY
        settings.INNGEST_SIGNING_KEY = SIGNING_KEY
        settings.INNGEST_DEV = ""
        settings.INNGEST_EVENT_API_BASE_URL = api.url
        settings.INNGEST_PUBLISH_TIMEOUT_SECONDS = 0.5
        yield api


@pytest.fixture
def executor(settings: Any, live_server: Any) -> Iterator[Executor]:
    """A loopback executor driving /api/inngest of a live server, in cloud mode (signed)."""
    settings.INNGEST_SIGNING_KEY = SIGNING_KEY
    settings.INNGEST_EVENT_KEY = EVENT_KEY
    settings.INNGEST_DEV = ""
    runner = Executor(serve_url=f"{live_server.url}/api/inngest", signing_key=SIGNING_KEY)
    runner.sync()
    yield runner
    runner.stop()


@pytest.fixture
def inngest_server(settings: Any) -> Iterator[InngestServer]:
    """A loopback Inngest as `inngest start` runs it, and settings that point the app at it (self-hosted)."""
    with InngestServer(event_key=EVENT_KEY, signing_key=SELF_HOSTED_KEY) as server:
        settings.INNGEST_BASE_URL = server.url
        settings.INNGEST_SIGNING_KEY = SELF_HOSTED_KEY
        settings.INNGEST_EVENT_KEY = EVENT_KEY
        settings.INNGEST_DEV = ""
        yield server


# --- Operators and dead letters (the admin's tests) --------------------------------


@pytest.fixture
def make_staff() -> Callable[..., Any]:
    """Create a staff user holding exactly the permissions named ("runs.view_deadletter", ...)."""
    from django.contrib.auth.models import Permission, User

    def make(username: str, *perms: str, superuser: bool = False) -> User:
        user = User.objects.create_user(
            username, password=STAFF_PASSWORD, is_staff=True, is_superuser=superuser, email=f"{username}@example.com"
        )
        for perm in perms:
            app_label, codename = perm.split(".")
            user.user_permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        return user

    return make


@pytest.fixture
def make_job_letter(now: datetime) -> Callable[..., Any]:
    """Create a dead job (attempts exhausted) and its dead letter, as the runner leaves them."""
    from runs.models import DeadLetter

    def make(kind: str = "test.record", *, tenant: str = "", payload: Any = None, **fields: Any) -> DeadLetter:
        job = BackgroundJob.objects.create(
            kind=kind,
            tenant=tenant,
            payload={"n": 1} if payload is None else payload,
            status=BackgroundJob.Status.DEAD,
            attempts=3,
            max_attempts=3,
            priority=7,
            run_after=now,
            created_at=now,
            started_at=now,
            finished_at=now,
            last_error="ValueError: boom",
        )
        fields.setdefault("dispatch_key", "cron:background-jobs:2026-03-14T15:09")
        fields.setdefault("correlation_id", "tick-42")
        fields.setdefault("created_at", now)
        fields.setdefault("error", "ValueError: boom")
        return DeadLetter.objects.create(
            source=DeadLetter.Source.JOB,
            job=job,
            kind=kind,
            scope=job.scope,
            fingerprint=error_fingerprint(fields["error"]),
            payload=job.payload,
            attempts=job.attempts,
            **fields,
        )

    return make


@pytest.fixture
def make_run_letter(now: datetime) -> Callable[..., Any]:
    """Create a failed function run of the test cron job `counter` and its dead letter, with its event."""
    from itertools import count

    from runs.models import DeadLetter, FunctionRun

    serial = count(1)

    def make(function_id: str = "cron-counter", *, payload: Any = "event", **fields: Any) -> DeadLetter:
        n = next(serial)
        minute = 5 * n % 60  # one 5-minute window of `counter` per letter
        key = f"cron:counter:2026-03-14T14:{minute:02d}"
        run = FunctionRun.objects.create(
            function_id=function_id,
            dispatch_key=key,
            window_start=datetime(2026, 3, 14, 14, minute, tzinfo=UTC),
            run_id=f"run-{n}",
            correlation_id="tick-7",
            source="cron",
            status=FunctionRun.Status.FAILED,
            attempts=4,
            started_at=now,
            finished_at=now,
            terminal_reason="retries exhausted",
            last_error="ConnectionError: upstream down",
        )
        if payload == "event":
            payload = {
                "event": "cron/counter.requested",
                "data": {
                    "source": "cron",
                    "requestedAt": f"2026-03-14T14:{minute:02d}:01.000Z",
                    "dispatchKey": key,
                    "correlationId": "tick-7",
                    "dispatchWindowStart": f"2026-03-14T14:{minute:02d}:00.000Z",
                    "dispatchWindowSeconds": 300,
                    "params": {"tenant": "acme"},
                },
            }
        fields.setdefault("created_at", now)
        return DeadLetter.objects.create(
            source=DeadLetter.Source.FUNCTION_RUN,
            function_run=run,
            kind=function_id,
            dispatch_key=key,
            correlation_id="tick-7",
            run_id=run.run_id,
            error="ConnectionError: upstream down",
            fingerprint="ConnectionError: upstream down",
            payload=payload,
            attempts=4,
            **fields,
        )

    return make
