"""Fixtures shared by every app's tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from django.core.cache import cache
from hypothesis import settings as hypothesis_settings

from jobs.models import BackgroundJob
from orchestrator.testing.event_api import EventAPI
from orchestrator.testing.executor import Executor
from orchestrator.testing.stress import full

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


# --- Inngest on loopback (SPEC §9) ------------------------------------------------

EVENT_KEY = "test-event-key"
SIGNING_KEY = "signkey-test-" + "5e" * 32


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
