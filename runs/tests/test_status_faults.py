"""Redis down: runs still complete and are recorded in PostgreSQL; the status blobs are skipped with a log line."""

from __future__ import annotations

import time
from typing import Any

import pytest
from django.test import Client

from jobs.models import BackgroundJob
from runs.models import DeadLetter, FunctionRun
from testsupport.executor import Executor
from testsupport.models import HandlerRun

SECRET = "status-faults-cron-secret"
KEY = "cron:background-jobs:2026-03-14T15:09"
BLOB_SKIPPED = "status blob not written: cache unavailable"


def event(name: str, key: str = KEY) -> dict[str, Any]:
    data = {"source": "cron", "dispatchKey": key, "correlationId": "redis-down", "dispatchWindowSeconds": 60}
    return {"name": name, "id": f"{name}:{key}", "data": data, "ts": int(time.time() * 1000)}


@pytest.mark.django_db
@pytest.mark.usefixtures("cache_down")
def test_inline_tick__redis_down_runs_and_records_everything(settings: Any, caplog: Any) -> None:
    settings.CRON_SECRET = SECRET
    BackgroundJob.objects.bulk_create([BackgroundJob(kind="test.record") for _ in range(5)])

    response = Client().get("/api/cron/background-jobs", headers={"Authorization": f"Bearer {SECRET}"})

    assert response.status_code == 200, response.content[:300]
    body = response.json()
    assert (body["mode"], "error" in body) == ("inline", False)
    assert body["summary"]["process-background-jobs"]["succeeded"] == 5
    assert HandlerRun.objects.count() == 5
    runs = dict(FunctionRun.objects.values_list("function_id", "status"))
    assert runs == {"background-maintenance": "succeeded", "process-background-jobs": "succeeded"}
    assert BLOB_SKIPPED in caplog.text


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("cache_down")
def test_functions__redis_down_run_and_record_successes_and_failures(executor: Executor, caplog: Any) -> None:
    BackgroundJob.objects.bulk_create([BackgroundJob(kind="test.record") for _ in range(5)])

    [process] = executor.deliver(event("background/process.requested"))
    [maintenance] = executor.deliver(event("background/maintenance.requested"))
    [crash] = executor.deliver(event("cron/crash.requested", "cron:crash:2026-03-14T15:09"))

    assert (process.status, maintenance.status) == ("completed", "completed")
    assert process.output["succeeded"] == 5
    assert HandlerRun.objects.count() == 5
    [failure_handler] = [run for run in executor.runs if run.function_id == "orchestrator-cron-crash-failure"]
    assert (crash.status, failure_handler.status) == ("failed", "completed")
    runs = dict(FunctionRun.objects.values_list("function_id", "status"))
    assert runs == {
        "process-background-jobs": "succeeded",
        "background-maintenance": "succeeded",
        "cron-crash": "failed",
    }
    assert DeadLetter.objects.get().kind == "cron-crash"
    assert BLOB_SKIPPED in caplog.text
