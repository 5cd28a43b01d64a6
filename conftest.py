"""Fixtures shared by every app's tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from django.core.cache import cache

from jobs.models import BackgroundJob


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
