"""Orphans the reconciler recovers: a dead tick's pending window, a failed publish, a run without progress.

Ticks and runs are made to look dead by moving their rows' timestamps back, never by waiting.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db.models import F
from django.utils import timezone

from core.timefmt import iso_utc
from dispatch.models import DispatchWindow
from dispatch.registry import get_cron_job
from dispatch.services import dispatch_tick
from dispatch.windows import stale_after, window_claim, window_close
from runs.models import DeadLetter, FunctionRun, FunctionRunAttempt
from runs.orphans import BATCH, backoff
from runs.reconcile import reconcile
from runs.reconcile_settings import MIN_RUN_BOUND, run_bound
from runs.triage import dead_letter_requeue
from testsupport.event_api import EventAPI
from testsupport.models import CronRun

pytestmark = pytest.mark.django_db


def back(model: str, delta: timedelta, **filters: Any) -> None:
    """Move rows' times back by `delta`: as if that long had passed since they were written."""
    if model == "window":
        DispatchWindow.objects.filter(**filters).update(updated_at=F("updated_at") - delta)
    elif model == "run":
        FunctionRun.objects.filter(**filters).update(started_at=F("started_at") - delta)
    else:
        FunctionRunAttempt.objects.filter(**filters).update(started_at=F("started_at") - delta)


def claim_inline(key: str = "cron:counter:2026-03-14T15:05") -> DispatchWindow:
    """Claim a window for an inline tick that then dies (nothing closes it)."""
    start = datetime.fromisoformat("2026-03-14T15:05:00+00:00")
    claim = window_claim(
        dispatch_key=key, job="counter", window_start=start, window_seconds=300, mode="inline", source="cron",
        correlation_id="dead-tick", event_ids=[], now=timezone.now(),
    )  # fmt: skip
    assert claim.won
    return claim.window


def test_reconcile__an_inline_window_pending_past_its_bound_is_abandoned_with_the_run_ledgers_verdict() -> None:
    window = claim_inline()
    FunctionRun.objects.create(function_id="cron-counter", dispatch_key=window.dispatch_key, run_id="inline-1")
    fresh = claim_inline("cron:counter:2026-03-14T15:10")
    back("window", stale_after("inline") + timedelta(seconds=1), pk=window.pk)

    summary = reconcile(now=timezone.now())

    assert summary["abandonedWindows"] == 1
    window.refresh_from_db()
    assert (window.status, window.mode, window.claim) == ("abandoned", "inline", 1)
    assert window.error.startswith("abandoned: its inline tick stopped after the claim (pending since ")
    assert window.error.endswith("); runs: cron-counter running")
    assert DispatchWindow.objects.get(pk=fresh.pk).status == "pending"  # its tick may still be at work
    assert not CronRun.objects.exists()  # an inline window is not run again by the reconciler


def test_reconcile__a_live_tick_that_closes_after_all_still_wins() -> None:
    window = claim_inline()
    back("window", stale_after("inline") + timedelta(seconds=1), pk=window.pk)
    reconcile(now=timezone.now())

    window_close(window, status="inline", latency_ms=25_000, now=timezone.now())  # the slow tick finishes

    assert DispatchWindow.objects.values_list("status", "error").get(pk=window.pk) == ("inline", "")


def test_reconcile__a_failed_publish_is_republished_with_backoff_up_to_its_bound(
    event_api: EventAPI, settings: Any, caplog: pytest.LogCaptureFixture
) -> None:
    settings.RECONCILE_REPUBLISH_MAX_ATTEMPTS = 3
    job = get_cron_job("counter")
    assert job is not None
    event_api.behave("error500")
    failed = dispatch_tick(job=job, now=timezone.now(), source="cron", correlation_id="tick-1")
    key = failed.body["dispatchKey"]

    soon = reconcile(now=timezone.now())  # inside the first backoff (60 s): left alone
    back("window", backoff(1) + timedelta(seconds=1), dispatch_key=key)
    again = reconcile(now=timezone.now())  # fails again: attempt 2
    back("window", backoff(2) + timedelta(seconds=1), dispatch_key=key)
    with caplog.at_level(logging.ERROR, logger="runs.orphans"):
        last = reconcile(now=timezone.now())  # attempt 3 of 3 fails: given up
    back("window", backoff(3) + timedelta(seconds=1), dispatch_key=key)
    after = reconcile(now=timezone.now())

    assert (failed.status_code, soon["republished"], again["republished"], last["gaveUp"], after["gaveUp"]) == (
        503,
        0,
        0,
        1,
        0,
    )
    # Each pass whose re-publish failed says so in its own record, not only in a log line.
    assert [summary["republishFailed"] for summary in (soon, again, last, after)] == [0, 1, 1, 0]
    window = DispatchWindow.objects.get()
    # The cron tick claimed it: "first cron window" and "last cron tick" still read so; the reconciler re-claimed it.
    assert (window.status, window.publish_attempts, window.source, window.reclaimed_by) == (
        "dispatch_failed",
        3,
        "cron",
        "reconciler",
    )
    [line] = [record for record in caplog.records if record.getMessage().startswith("window left dispatch_failed")]
    assert (line.levelname, line.dispatchKey, line.publishAttempts) == ("ERROR", key, 3)  # type: ignore[attr-defined]
    assert event_api.requests >= 3 and event_api.events == []


def test_reconcile__a_republish_that_goes_through_enqueues_the_window_with_the_same_event_ids(
    event_api: EventAPI,
) -> None:
    job = get_cron_job("background-jobs")
    assert job is not None
    event_api.behave("error500")
    failed = dispatch_tick(job=job, now=timezone.now(), source="cron", correlation_id="tick-1")
    event_api.behave("ok")
    back("window", backoff(1) + timedelta(seconds=1))

    summary = reconcile(now=timezone.now())

    window = DispatchWindow.objects.get()
    assert (summary["republished"], window.status, window.publish_attempts, window.claim) == (1, "enqueued", 2, 2)
    assert sorted(event_api.event_ids()) == sorted(failed.body["eventIds"]) == sorted(window.event_ids)


def test_backoff__doubles_from_the_base(settings: Any) -> None:
    settings.RECONCILE_REPUBLISH_BACKOFF_SECONDS = 60

    assert [backoff(n).total_seconds() for n in (1, 2, 3, 4)] == [60, 120, 240, 480]


def stuck_run(key: str = "cron:counter:2026-03-14T14:05", **fields: Any) -> FunctionRun:
    """A run of cron-counter that claimed its window, began its step `run`, and was never heard of again."""
    fields.setdefault("scope", "acme")
    run = FunctionRun.objects.create(
        function_id="cron-counter", dispatch_key=key, run_id="01RUN", correlation_id="tick-7", source="cron",
        attempts=1, **fields,
    )  # fmt: skip
    FunctionRunAttempt.objects.create(run=run, step="run", attempt=1)
    return run


def test_reconcile__a_run_without_progress_past_its_bound_fails_with_one_dead_letter_that_requeues(
    make_staff: Callable[..., User],
) -> None:
    run = stuck_run()
    live = stuck_run("cron:counter:2026-03-14T14:10")
    bound = run_bound("cron-counter")
    back("run", bound + timedelta(minutes=1), pk=run.pk)
    back("attempt", bound + timedelta(seconds=30), run=run)
    idle_since = FunctionRunAttempt.objects.get(run=run).started_at

    summary = reconcile(now=timezone.now())
    again = reconcile(now=timezone.now())

    assert (summary["abandonedRuns"], again["abandonedRuns"]) == (1, 0)
    run.refresh_from_db()
    assert (run.status, run.terminal_reason) == ("failed", f"abandoned: no progress since {iso_utc(idle_since)}")
    assert FunctionRunAttempt.objects.get(run=run).status == "failed"
    assert FunctionRun.objects.get(pk=live.pk).status == "running"
    letter = DeadLetter.objects.get()
    assert (letter.function_run_id, letter.kind, letter.dispatch_key, letter.error) == (
        run.pk,
        "cron-counter",
        run.dispatch_key,
        run.terminal_reason,
    )
    assert letter.payload is not None
    assert (letter.payload["event"], letter.payload["data"]["params"]) == ("cron/counter.requested", {"tenant": "acme"})

    report = dead_letter_requeue(letter_ids=[letter.pk], user=make_staff("operator"), now=timezone.now())

    assert report.done == [letter.pk]
    letter.refresh_from_db()
    assert letter.requeued_dispatch_key.startswith("cron:counter:2026-03-14T14:05:manual-")
    assert list(CronRun.objects.values_list("dispatch_key", "params")) == [
        (letter.requeued_dispatch_key, {"tenant": "acme"})
    ]


def test_reconcile__a_run_that_made_progress_since_is_left_running() -> None:
    run = stuck_run()
    bound = run_bound("cron-counter")
    back("run", bound + timedelta(minutes=1), pk=run.pk)
    back("attempt", bound + timedelta(seconds=30), run=run)
    FunctionRunAttempt.objects.create(run=run, step="run", attempt=2)  # a retry began just now

    summary = reconcile(now=timezone.now())

    assert summary["abandonedRuns"] == 0
    assert FunctionRun.objects.get(pk=run.pk).status == "running"
    assert not DeadLetter.objects.exists()


def test_reconcile__a_stuck_run_is_found_behind_a_full_batch_of_older_runs_that_are_alive() -> None:
    bound = run_bound("cron-counter")
    alive = [stuck_run(f"cron:counter:2026-03-13T{n // 12:02d}:{n % 12 * 5:02d}") for n in range(BATCH + 1)]
    for run in alive:  # started long ago, and still making progress: a retry began just now
        FunctionRunAttempt.objects.create(run=run, step="run", attempt=2)
    back("run", 2 * bound + timedelta(minutes=5), pk__in=[run.pk for run in alive])
    stuck = stuck_run("cron:counter:2026-03-14T14:05")
    back("run", bound + timedelta(minutes=1), pk=stuck.pk)
    back("attempt", bound + timedelta(seconds=30), run=stuck)

    summary = reconcile(now=timezone.now())

    assert summary["abandonedRuns"] == 1
    assert FunctionRun.objects.get(pk=stuck.pk).status == "failed"
    assert FunctionRun.objects.filter(status="running").count() == BATCH + 1


def test_run_bound__derived_from_the_step_budget_and_inngest_retry_wait_or_set_per_function(settings: Any) -> None:
    settings.INNGEST_STEP_BUDGET_SECONDS = 20
    settings.INNGEST_FUNCTION_RETRIES = 3
    settings.INNGEST_MAX_DRAIN_STEPS = 30
    settings.RECONCILE_RUN_BOUNDS = '{"cron-counter": 7200}'

    # The steps' work (budget x steps x attempts), then Inngest's wait before the last retry: 60 s + 30 s of jitter.
    assert run_bound("process-background-jobs") == timedelta(seconds=20 * 32 * 4 + 60 + 30)
    assert run_bound("background-maintenance") == timedelta(seconds=20 * 3 * 4 + 60 + 30)
    assert run_bound("cron-counter") == timedelta(hours=2)


@pytest.mark.parametrize(("retries", "wait"), [(0, 0), (1, 15 + 30), (6, 600 + 30), (10, 7200 + 30), (25, 7200 + 30)])
def test_run_bound__includes_the_wait_before_the_last_retry(settings: Any, retries: int, wait: int) -> None:
    settings.INNGEST_STEP_BUDGET_SECONDS = 5
    settings.INNGEST_FUNCTION_RETRIES = retries

    assert run_bound("background-maintenance") == max(timedelta(seconds=5 * 3 * (retries + 1) + wait), MIN_RUN_BOUND)
