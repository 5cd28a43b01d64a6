"""Concurrency 1 limits steps, not runs: a run waiting out a retry lets a newer run's steps go ahead."""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from dispatch import keys
from jobs.models import BackgroundJob
from jobs.runner import jobs_run
from runs import functions, ledger, orphans
from runs.models import FunctionRun, FunctionRunAttempt
from runs.tests.test_functions import PROCESS, enqueue, event
from testsupport.executor import Executor
from testsupport.models import HandlerRun
from testsupport.retries import JITTER_MAX

pytestmark = pytest.mark.django_db(transaction=True)


def window_key(minutes_ago: int) -> str:
    return keys.dispatch_key("background-jobs", keys.window_start(timezone.now() - timedelta(minutes=minutes_ago), 60))


@pytest.fixture
def first_drain_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first drain step of all fails (the database went away), before it claims anything."""
    calls = itertools.count()
    drain = jobs_run

    def drain_unless_first(**kwargs: Any) -> Any:
        if next(calls) == 0:
            raise ConnectionError("the database went away")
        return drain(**kwargs)

    monkeypatch.setattr(functions, "jobs_run", drain_unless_first)


def test_concurrency__a_newer_run_drains_while_an_older_one_waits_out_its_retry(
    executor: Executor, first_drain_fails: None
) -> None:
    executor.jitter = lambda: JITTER_MAX - 0.001
    enqueue(5)
    [older] = executor.send(event(PROCESS, window_key(1)))
    executor.run_due()  # its claim, then its drain fails: Inngest will try it again in 15 s + jitter
    [(waiting, due)] = executor.waiting()
    assert waiting is older

    [newer] = executor.send(event(PROCESS, window_key(0)))
    executor.run_due()  # the newer run's steps go ahead meanwhile

    assert (newer.status, newer.output["claimed"]) == ("completed", 5)
    older_row = FunctionRun.objects.get(run_id=older.run_id)
    idle_since = ledger.last_progress(older_row)
    summary = orphans.recover(now=idle_since + timedelta(seconds=due - executor.clock.now()))
    assert summary["abandonedRuns"] == 0  # the reconciler leaves the waiting run alone

    executor.advance(due - executor.clock.now())  # its retry comes

    assert (older.status, older.output["claimed"]) == ("completed", 0)
    older_row.refresh_from_db()
    assert older_row.status == "succeeded"
    assert list(
        FunctionRunAttempt.objects.filter(run=older_row).order_by("started_at").values_list("step", "attempt", "status")
    ) == [("drain-1", 1, "failed"), ("drain-1", 2, "succeeded")]
    newer_drain = FunctionRunAttempt.objects.get(run__run_id=newer.run_id, step="drain-1")
    retry = FunctionRunAttempt.objects.get(run=older_row, attempt=2)
    assert newer_drain.finished_at is not None and newer_drain.finished_at <= retry.started_at
    # No job ran twice.
    assert HandlerRun.objects.count() == 5
    assert BackgroundJob.objects.filter(status="succeeded").count() == 5


def test_concurrency__when_both_are_due_the_older_run_goes_first(executor: Executor, settings: Any) -> None:
    settings.INNGEST_STEP_MAX_JOBS = 2
    enqueue(3)
    [older] = executor.send(event(PROCESS, window_key(1)))
    executor.clock.advance(1)
    [newer] = executor.send(event(PROCESS, window_key(0)))

    executor.run_due()

    # Both were due: every step of the older run went first, though the newer run's start was queued before them.
    assert (older.output["claimed"], newer.output["claimed"]) == (3, 0)
    first, second = FunctionRun.objects.order_by("started_at")
    assert (first.run_id, second.run_id) == (older.run_id, newer.run_id)
    assert first.finished_at is not None and first.finished_at <= second.started_at
