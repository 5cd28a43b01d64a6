"""The reconciler only ever publishes: an orphaned window whose job now runs inline is left as it is, and counted.

The rollback lever, force-inline, a missing event key or the emergency fallback must not
turn the reconciler into a runner of old windows inside someone else's request (an
inline run of `background-jobs` runs maintenance, which runs the reconciler again).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.utils import timezone

from core.timefmt import iso_utc
from dispatch import keys
from dispatch.models import DispatchWindow
from dispatch.windows import stale_after
from runs import orphans
from runs.models import FunctionRun
from runs.reconcile import reconcile
from testsupport.event_api import EventAPI

pytestmark = pytest.mark.django_db

EVENTS = ("background/process.requested", "background/maintenance.requested")
FAILED = 6


def orphan(start: datetime, *, status: str, updated_at: datetime) -> DispatchWindow:
    """A background-jobs window a cron tick claimed in dispatch mode and left failed (or pending: it died)."""
    key = keys.dispatch_key("background-jobs", start)
    return DispatchWindow.objects.create(
        dispatch_key=key, job="background-jobs", status=status, mode="dispatch", source="cron",
        correlation_id=f"tick-{start:%H%M}", window_start=start, window_seconds=60, requested_at=start,
        event_ids=[keys.event_id(name, key) for name in EVENTS], publish_attempts=1, created_at=start,
        updated_at=updated_at,
    )  # fmt: skip


@pytest.fixture
def orphans_of_background_jobs() -> Callable[[datetime], list[DispatchWindow]]:
    """Six windows whose publish failed (past their backoff), then one pending past its stale bound."""

    def make(now: datetime) -> list[DispatchWindow]:
        minute = keys.window_start(now, 60)
        failed = [
            orphan(minute - timedelta(minutes=n), status="dispatch_failed", updated_at=now - timedelta(minutes=10))
            for n in range(FAILED, 0, -1)
        ]
        dead = now - stale_after("dispatch") - timedelta(seconds=1)
        return [*failed, orphan(minute - timedelta(minutes=FAILED + 1), status="pending", updated_at=dead)]

    return make


def lever(settings: Any) -> str:
    settings.DISPATCH_FLAGS = {"BACKGROUND_JOBS_USE_INNGEST": False}
    return "BACKGROUND_JOBS_USE_INNGEST is false (the rollback lever)"


def force_inline(settings: Any) -> str:
    settings.BACKGROUND_JOBS_FORCE_INLINE = True
    return "BACKGROUND_JOBS_FORCE_INLINE is on"


def no_event_key(settings: Any) -> str:
    settings.INNGEST_EVENT_KEY = ""
    settings.INNGEST_DEV = ""
    return "BACKGROUND_JOBS_USE_INNGEST is unset and Inngest publishing is not configured"


@pytest.mark.parametrize("switch", [lever, force_inline, no_event_key])
def test_reconcile__an_orphan_whose_job_now_runs_inline_is_left_as_it_is_and_counted(
    event_api: EventAPI,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
    orphans_of_background_jobs: Callable[[datetime], list[DispatchWindow]],
    switch: Callable[[Any], str],
) -> None:
    now = timezone.now()
    windows = orphans_of_background_jobs(now)
    why = switch(settings)

    with caplog.at_level(logging.WARNING, logger="runs.orphans"):
        summary = reconcile(now=now)

    assert not FunctionRun.objects.exists()  # nothing ran inline: no maintenance, no nested reconciler
    after = DispatchWindow.objects.order_by("window_start")
    assert list(after.values_list("dispatch_key", "status", "mode", "source", "claim", "publish_attempts")) == [
        (w.dispatch_key, w.status, "dispatch", "cron", 1, 1) for w in sorted(windows, key=lambda w: w.window_start)
    ]
    assert event_api.requests == 0
    assert (summary["republished"], summary["notRepublished"], summary["abandonedWindows"]) == (0, FAILED + 1, 0)
    assert (summary["missed"], summary["caughtUp"], summary["gaveUp"]) == (0, 0, 0)
    lines = [record for record in caplog.records if record.getMessage().startswith("orphaned window not re-published")]
    assert sorted(line.dispatchKey for line in lines) == sorted(w.dispatch_key for w in windows)  # type: ignore[attr-defined]
    assert {line.reason for line in lines} == {why}  # type: ignore[attr-defined]
    assert {line.levelname for line in lines} == {"WARNING"}


def test_reconcile__a_republish_that_fails_under_the_emergency_fallback_does_not_run_inline(
    event_api: EventAPI, settings: Any, orphans_of_background_jobs: Callable[[datetime], list[DispatchWindow]]
) -> None:
    now = timezone.now()
    orphans_of_background_jobs(now)
    settings.BACKGROUND_JOBS_INLINE_EMERGENCY_FALLBACK = True
    settings.BACKGROUND_JOBS_INLINE_EMERGENCY_FALLBACK_UNTIL = iso_utc(now + timedelta(hours=1))
    event_api.behave("error500")

    summary = reconcile(now=now)

    assert not DispatchWindow.objects.filter(status="inline").exists()
    assert DispatchWindow.objects.filter(mode="dispatch").count() == FAILED + 1
    # The first re-publish (the pending window's: pending windows come first) failed: no other was tried.
    assert DispatchWindow.objects.filter(reclaimed_by="reconciler").values_list("status", "publish_attempts").get() == (
        "dispatch_failed",
        2,
    )
    assert not FunctionRun.objects.exists()
    assert (summary["republished"], summary["republishFailed"], summary["notRepublished"]) == (0, 1, 0)


def test_reconcile__a_reconcile_inside_a_reconcile_does_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    inner: list[dict[str, Any]] = []
    recover = orphans.recover

    def recover_and_reconcile_again(*, now: datetime) -> dict[str, int]:
        inner.append(reconcile(now=now))  # as a window run inline from here would, through maintenance
        return recover(now=now)

    monkeypatch.setattr(orphans, "recover", recover_and_reconcile_again)

    with caplog.at_level(logging.WARNING, logger="runs.reconcile"):
        outer = reconcile(now=timezone.now())

    assert inner == [{"skipped": "nested: a reconcile is already running in this context"}]
    assert outer["republished"] == 0 and "skipped" not in outer
    assert [record.getMessage() for record in caplog.records] == [
        "reconcile skipped: a reconcile is already running in this context"
    ]
