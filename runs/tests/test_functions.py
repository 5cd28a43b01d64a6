"""The Inngest functions, driven over HTTP by the loopback executor (signed, cloud mode)."""

from __future__ import annotations

import itertools
import logging
import time
from typing import Any

import pytest
from django.utils import timezone

from jobs.models import BackgroundJob
from jobs.runner import jobs_run
from runs import functions, ledger
from runs.models import DeadLetter, FunctionRun, FunctionRunAttempt
from runs.status import status_read
from testsupport.executor import Executor
from testsupport.models import HandlerRun

pytestmark = pytest.mark.django_db(transaction=True)

PROCESS = "background/process.requested"
KEY = "cron:background-jobs:2026-03-14T15:09"


def event(name: str, key: str | None = KEY, **data: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "source": "cron",
        "requestedAt": "2026-03-14T15:09:26.500Z",
        "correlationId": "corr-9",
        "dispatchWindowStart": "2026-03-14T15:09:00.000Z",
        "dispatchWindowSeconds": 60,
        **data,
    }
    if key is not None:
        payload["dispatchKey"] = key
    return {"name": name, "id": f"{name}:{key}", "data": payload, "ts": int(time.time() * 1000)}


def enqueue(count: int, kind: str = "test.record") -> None:
    BackgroundJob.objects.bulk_create([BackgroundJob(kind=kind) for _ in range(count)])


def test_sync__serves_every_function_with_retries_concurrency_and_idempotency(executor: Executor) -> None:
    functions = executor.functions

    for name in ("process-background-jobs", "background-maintenance", "cron-counter", "cron-crash", "cron-flaky"):
        function = functions[f"orchestrator-{name}"]
        assert (function.max_attempts, function.concurrency, function.idempotency) == (
            4,
            1,
            "event.data.dispatchKey",
        )
        failure = functions[f"orchestrator-{name}-failure"]
        assert (failure.trigger_event, failure.max_attempts) == ("inngest/function.failed", 1)
        assert failure.expression == f"event.data.function_id == 'orchestrator-{name}'"
    assert functions["orchestrator-process-background-jobs"].trigger_event == PROCESS


def test_process_function__drains_the_queue_and_records_the_run(executor: Executor) -> None:
    enqueue(3)

    [run] = executor.deliver(event(PROCESS))

    assert run.status == "completed"
    assert (run.output["claimed"], run.output["succeeded"]) == (3, 3)
    assert HandlerRun.objects.count() == 3
    row = FunctionRun.objects.get()
    assert (row.function_id, row.dispatch_key, row.run_id, row.status) == (
        "process-background-jobs",
        KEY,
        run.run_id,
        "succeeded",
    )
    assert (row.correlation_id, row.source, row.scope, row.attempts) == ("corr-9", "cron", "global", 1)
    assert row.output == run.output
    assert list(FunctionRunAttempt.objects.values_list("attempt", "status")) == [(1, "succeeded")]
    blob = status_read(scope="global", job_name="process-background-jobs")
    assert blob is not None
    assert (blob["status"], blob["runId"], blob["dispatchKey"], blob["correlationId"]) == (
        "succeeded",
        run.run_id,
        KEY,
        "corr-9",
    )
    assert blob["durationMs"] is not None


def test_process_function__drains_in_several_steps_and_the_ledger_stays_single(
    executor: Executor, settings: Any
) -> None:
    settings.INNGEST_STEP_MAX_JOBS = 2
    enqueue(5)

    [run] = executor.deliver(event(PROCESS))

    drain_steps = [memo for memo in run.steps.values() if "claimed" in (memo.get("data") or {})]
    assert len(drain_steps) == 3  # 2 + 2 + 1 jobs
    assert (run.output["claimed"], run.output["succeeded"], run.output["remainingBacklog"]) == (5, 5, 0)
    assert HandlerRun.objects.count() == 5
    # One attempt of each step, each recorded.
    assert FunctionRun.objects.get().attempts == 3
    assert list(FunctionRunAttempt.objects.values_list("step", "attempt", "status")) == [
        ("drain-1", 1, "succeeded"),
        ("drain-2", 1, "succeeded"),
        ("drain-3", 1, "succeeded"),
    ]


def test_redelivery__the_same_event_is_deduplicated_and_a_new_run_id_does_no_work(executor: Executor) -> None:
    enqueue(2)
    [first] = executor.deliver(event(PROCESS))
    enqueue(2)

    assert executor.deliver(event(PROCESS)) == []  # Inngest's own dedupe: same event id
    [again] = executor.deliver(event(PROCESS), force=True)  # as if Inngest's idempotency had not held

    assert again.status == "completed"
    assert again.run_id != first.run_id
    assert again.output == {"skipped": "duplicate-window"}
    assert HandlerRun.objects.count() == 2  # the later jobs wait for the next window
    row = FunctionRun.objects.get()
    assert (row.run_id, row.duplicates_suppressed) == (first.run_id, 1)


def test_cron_function__a_failed_attempt_is_retried_and_recorded(executor: Executor) -> None:
    [run] = executor.deliver(event("cron/flaky.requested", "cron:flaky:2026-03-14T15:09"))

    assert run.status == "completed"
    assert run.output == {"calls": 2}
    row = FunctionRun.objects.get()
    assert (row.status, row.attempts, row.last_error) == (
        "succeeded",
        2,
        "ConnectionError: flaky dependency: first call fails",
    )
    assert list(FunctionRunAttempt.objects.order_by("attempt").values_list("attempt", "status", "step", "error")) == [
        (1, "failed", "run", "ConnectionError: flaky dependency: first call fails"),
        (2, "succeeded", "run", ""),
    ]
    assert not DeadLetter.objects.exists()


def test_cron_function__retries_until_terminal_then_exactly_one_dead_letter(executor: Executor) -> None:
    [run] = executor.deliver(event("cron/crash.requested", "cron:crash:2026-03-14T15:09"))

    assert run.status == "failed"
    assert run.max_attempt == 3  # ctx.attempt 0..3: four attempts
    row = FunctionRun.objects.get()
    assert (row.status, row.attempts, row.terminal_reason) == ("failed", 4, "retries exhausted (4) in step run")
    assert list(FunctionRunAttempt.objects.order_by("attempt").values_list("attempt", "status")) == [
        (1, "failed"),
        (2, "failed"),
        (3, "failed"),
        (4, "failed"),
    ]
    letter = DeadLetter.objects.get()
    assert (letter.source, letter.function_run_id, letter.kind, letter.attempts) == (
        "function_run",
        row.pk,
        "cron-crash",
        4,
    )
    assert letter.error == "RuntimeError: the crash cron job always crashes"
    assert letter.payload == {
        "event": "cron/crash.requested",
        "data": event("cron/crash.requested", "cron:crash:2026-03-14T15:09")["data"],
    }
    # on_failure ran too, and found the same letter.
    [failure] = [r for r in executor.runs if r.function_id.endswith("-failure")]
    assert (failure.status, failure.output) == ("completed", {"deadLetter": letter.pk})
    blob = status_read(scope="global", job_name="cron-crash")
    assert blob is not None
    assert (blob["status"], blob["lastError"]) == ("failed", letter.error)


def test_on_failure__alone_writes_the_dead_letter(executor: Executor) -> None:
    original = event("cron/counter.requested", "cron:counter:2026-03-14T15:05")
    failed = {
        "name": "inngest/function.failed",
        "id": "failure-1",
        "data": {
            "function_id": "orchestrator-cron-counter",
            "run_id": "01RUNTHATNEVERCLAIMED",
            "error": {"name": "TimeoutError", "message": "the step timed out\non the platform"},
            "event": original,
        },
    }

    [run] = executor.deliver(failed)
    executor.deliver(failed, force=True)  # a second report changes nothing

    assert run.status == "completed"
    row = FunctionRun.objects.get()
    assert (row.status, row.run_id, row.dispatch_key, row.terminal_reason) == (
        "failed",
        "01RUNTHATNEVERCLAIMED",
        "cron:counter:2026-03-14T15:05",
        "reported by on_failure",
    )
    letter = DeadLetter.objects.get()
    assert letter.error == "TimeoutError: the step timed out on the platform"
    assert letter.run_id == "01RUNTHATNEVERCLAIMED"


def test_on_failure__of_a_duplicate_run_leaves_the_owner_alone(executor: Executor) -> None:
    [owner] = executor.deliver(event("cron/counter.requested", "cron:counter:2026-03-14T15:05"))
    failed = {
        "name": "inngest/function.failed",
        "id": "failure-2",
        "data": {
            "function_id": "orchestrator-cron-counter",
            "run_id": "01DUPLICATE",
            "error": {"name": "Error", "message": "boom"},
            "event": event("cron/counter.requested", "cron:counter:2026-03-14T15:05"),
        },
    }

    executor.deliver(failed)

    row = FunctionRun.objects.get()
    assert (row.run_id, row.status) == (owner.run_id, "succeeded")
    assert not DeadLetter.objects.exists()


def test_process_function__every_attempt_of_every_step_is_recorded(
    executor: Executor, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.INNGEST_STEP_MAX_JOBS = 2
    enqueue(3)  # two drain steps: 2 jobs, then 1
    calls = itertools.count(1)
    drain = jobs_run

    def first_attempts_fail(**kwargs: Any) -> Any:
        if next(calls) % 2:  # Inngest restarts ctx.attempt for each step: attempt 1 of each step fails
            raise ConnectionError("the database went away mid-drain")
        return drain(**kwargs)

    monkeypatch.setattr(functions, "jobs_run", first_attempts_fail)  # a fault in the drain step itself

    [run] = executor.deliver(event(PROCESS))

    assert run.status == "completed"
    assert (run.output["claimed"], run.output["succeeded"]) == (3, 3)
    error = "ConnectionError: the database went away mid-drain"
    assert list(FunctionRunAttempt.objects.values_list("step", "attempt", "status", "error")) == [
        ("drain-1", 1, "failed", error),
        ("drain-1", 2, "succeeded", ""),
        ("drain-2", 1, "failed", error),
        ("drain-2", 2, "succeeded", ""),
    ]
    row = FunctionRun.objects.get()
    assert (row.status, row.attempts, row.last_error) == ("succeeded", 4, error)


def test_cron_function__the_last_attempt_is_the_one_inngest_says(executor: Executor, settings: Any) -> None:
    # Inngest synced the function with 3 retries (4 attempts); the setting changed since (a deploy).
    settings.INNGEST_FUNCTION_RETRIES = 1

    [run] = executor.deliver(event("cron/crash.requested", "cron:crash:2026-03-14T15:09"))

    assert (run.status, run.max_attempt) == ("failed", 3)  # ctx.attempt 0..3, max_attempts 4
    row = FunctionRun.objects.get()
    assert (row.status, row.attempts, row.terminal_reason) == ("failed", 4, "retries exhausted (4) in step run")
    assert list(FunctionRunAttempt.objects.values_list("attempt", "status")) == [
        (1, "failed"),
        (2, "failed"),
        (3, "failed"),
        (4, "failed"),
    ]
    assert DeadLetter.objects.get().attempts == 4


def test_process_function__a_run_abandoned_meanwhile_does_no_more_work_and_does_not_report_success(
    executor: Executor, settings: Any, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings.INNGEST_STEP_MAX_JOBS = 2
    enqueue(3)  # two drain steps: 2 jobs, then 1
    drain = jobs_run

    def drain_then_abandoned(**kwargs: Any) -> Any:
        summary = drain(**kwargs)
        if not DeadLetter.objects.exists():  # the reconciler gave up on the run while this step was slow
            run = FunctionRun.objects.get()
            assert ledger.run_abandon(run_pk=run.pk, idle_since=timezone.now(), payload=None, now=timezone.now())
        return summary

    monkeypatch.setattr(functions, "jobs_run", drain_then_abandoned)

    with caplog.at_level(logging.INFO, logger="runs.ledger"):
        [run] = executor.deliver(event(PROCESS))

    assert HandlerRun.objects.count() == 2  # drain-2 did not run: the third job waits for the next window
    assert BackgroundJob.objects.filter(status="pending").count() == 1
    assert run.status == "failed"
    row = FunctionRun.objects.get()
    assert (row.status, row.output) == ("failed", None)
    assert row.terminal_reason.startswith("abandoned: no progress since ")
    assert list(FunctionRunAttempt.objects.values_list("step", "attempt", "status")) == [("drain-1", 1, "failed")]
    letter = DeadLetter.objects.get()  # one dead letter: the abandon's (on_failure found it)
    assert letter.error == row.terminal_reason
    blob = status_read(scope="global", job_name="process-background-jobs")
    assert blob is not None and blob["status"] == "failed"
    assert "run finished" not in [record.getMessage() for record in caplog.records]
