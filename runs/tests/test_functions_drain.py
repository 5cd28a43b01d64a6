"""The drain on request (`drain-background-jobs`), driven by the loopback executor like the window functions."""

from __future__ import annotations

import time
from typing import Any

import pytest

from jobs.models import BackgroundJob
from runs.models import FunctionRun
from testsupport.executor import Executor
from testsupport.models import HandlerRun

pytestmark = pytest.mark.django_db(transaction=True)

DRAIN = "background/drain.requested"
KEY = "drain:background-jobs:2026-03-14T15:09:26"


def drain_event(key: str, run_id_hint: str = "") -> dict[str, Any]:
    data = {
        "source": "enqueue",
        "requestedAt": "2026-03-14T15:09:26.000Z",
        "dispatchKey": key,
        "correlationId": f"corr-drain{run_id_hint}",
        "dispatchWindowStart": "2026-03-14T15:09:26.000Z",
        "dispatchWindowSeconds": 1,
    }
    return {"name": DRAIN, "id": f"{DRAIN}:{key}", "data": data, "ts": int(time.time() * 1000)}


def test_drain_function__drains_the_queue_and_records_one_run_per_second(executor: Executor) -> None:
    function = executor.functions["orchestrator-drain-background-jobs"]
    assert (function.trigger_event, function.concurrency, function.idempotency) == (
        DRAIN,
        1,
        "event.data.dispatchKey",
    )
    BackgroundJob.objects.bulk_create([BackgroundJob(kind="test.record") for _ in range(3)])

    [run] = executor.deliver(drain_event(KEY))
    [again] = executor.deliver(drain_event(KEY, "-2"), force=True)  # the same second, another run id

    assert (run.status, run.output["succeeded"]) == ("completed", 3)
    assert again.output == {"skipped": "duplicate-window"}
    assert HandlerRun.objects.count() == 3
    row = FunctionRun.objects.get()
    assert (row.function_id, row.dispatch_key, row.run_id, row.status, row.source) == (
        "drain-background-jobs",
        KEY,
        run.run_id,
        "succeeded",
        "enqueue",
    )
    assert row.duplicates_suppressed == 1


def test_drain_function__refuses_a_key_that_names_no_second(executor: Executor) -> None:
    [run] = executor.deliver(drain_event("cron:background-jobs:2026-03-14T15:09"))

    assert run.status == "failed"
    row = FunctionRun.objects.get()
    assert row.status == "failed" and "is not a drain key" in row.last_error
