"""End to end through a live gunicorn: cron call → event API → executor → /api/inngest."""

from __future__ import annotations

import json

import httpx
import pytest

from conftest import EVENT_KEY, SIGNING_KEY
from dispatch.models import DispatchWindow
from jobs.models import BackgroundJob
from runs.models import FunctionRun
from runs.status import status_read
from testsupport.event_api import EventAPI
from testsupport.executor import Executor
from testsupport.live import Gunicorn
from testsupport.models import HandlerRun

SECRET = "e2e-cron-secret"


@pytest.mark.django_db(transaction=True)
def test_cron_to_inngest_to_drained_jobs_through_gunicorn() -> None:
    BackgroundJob.objects.bulk_create([BackgroundJob(kind="test.record") for _ in range(20)])
    with EventAPI(event_key=EVENT_KEY) as event_api:
        server = Gunicorn(
            LOG_LEVEL="INFO",
            DEBUG="false",
            ALLOWED_HOSTS="127.0.0.1",
            CRON_SECRET=SECRET,
            INNGEST_EVENT_KEY=EVENT_KEY,
            INNGEST_SIGNING_KEY=SIGNING_KEY,
            INNGEST_EVENT_API_BASE_URL=event_api.url,
        )
        with server:
            executor = Executor(serve_url=f"{server.url}/api/inngest", signing_key=SIGNING_KEY)
            executor.sync()
            event_api.on_event = executor.submit
            auth = {"Authorization": f"Bearer {SECRET}", "X-Correlation-Id": "e2e-trace-1"}

            # The second tick follows at once: both fall in one (60 s) window.
            first = httpx.get(f"{server.url}/api/cron/background-jobs", headers=auth, timeout=30)
            second = httpx.post(f"{server.url}/api/cron/background-jobs", headers=auth, timeout=30)
            executor.wait_idle()
            process_event = next(e for e in event_api.events if e["name"] == "background/process.requested")
            [redelivered] = executor.deliver(process_event, force=True)
            executor.stop()
        logs = [json.loads(line) for line in server.stop().splitlines() if line.startswith("{")]

    assert first.status_code == 202, first.text
    body = first.json()
    assert (body["mode"], body["enqueued"], body["correlationId"]) == ("dispatch", True, "e2e-trace-1")
    assert (second.status_code, second.json()["duplicate"]) == (200, True)
    assert len(event_api.events) == 2  # the second tick published nothing

    assert HandlerRun.objects.count() == 20
    assert BackgroundJob.objects.filter(status="succeeded").count() == 20
    runs = {run.function_id: run for run in FunctionRun.objects.all()}
    assert set(runs) == {"process-background-jobs", "background-maintenance"}
    executor_runs = {run.function_id.removeprefix("orchestrator-"): run for run in reversed(executor.runs)}
    for function_id, row in runs.items():
        assert row.status == "succeeded"
        assert row.run_id == executor_runs[function_id].run_id
        assert (row.dispatch_key, row.correlation_id, row.source) == (body["dispatchKey"], "e2e-trace-1", "cron")
        blob = status_read(scope="global", job_name=function_id)
        assert blob is not None
        assert (blob["status"], blob["runId"]) == ("succeeded", row.run_id)
    assert (runs["process-background-jobs"].output or {})["succeeded"] == 20

    assert redelivered.output == {"skipped": "duplicate-window"}  # a new run id did no work
    assert runs["process-background-jobs"].run_id != redelivered.run_id
    assert FunctionRun.objects.get(function_id="process-background-jobs").duplicates_suppressed == 1
    window = DispatchWindow.objects.get()
    assert (window.status, window.duplicate_ticks) == ("enqueued", 1)

    # The correlation id flowed from the cron request into the functions' log lines.
    started = [line for line in logs if line.get("action") == "run_start"]
    assert {line["runId"] for line in started} == {row.run_id for row in runs.values()}
    assert all(line["correlationId"] == "e2e-trace-1" for line in started)
    dispatched = [line for line in logs if line.get("action") == "publish"]
    assert dispatched[0]["correlationId"] == "e2e-trace-1"
    assert dispatched[0]["mode"] == "dispatch"
