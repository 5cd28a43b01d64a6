"""docs/inngest.md's self-hosted walk-through, followed through a live gunicorn against `inngest start` on loopback."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from conftest import EVENT_KEY, SELF_HOSTED_KEY
from jobs.models import BackgroundJob
from runs.models import FunctionRun
from testsupport import procs
from testsupport.inngest_server import InngestServer
from testsupport.live import Gunicorn

pytestmark = pytest.mark.django_db(transaction=True)

SECRET = "self-hosted-cron-secret"


def app_env(inngest: InngestServer, **extra: str) -> dict[str, str]:
    """The app's environment as the walk-through sets it: production, pointed at the self-hosted server."""
    return {
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "CRON_SECRET": SECRET,
        "INNGEST_BASE_URL": inngest.url,
        "INNGEST_SIGNING_KEY": SELF_HOSTED_KEY,
        "INNGEST_EVENT_KEY": EVENT_KEY,
        **extra,
    }


def registered(env: dict[str, str]) -> tuple[int, dict[str, Any]]:
    """Run `manage.py inngest_functions --json`; return its exit status and answer."""
    done = procs.run_manage("inngest_functions", "--json", env=procs.child_env(**env))
    return done.returncode, json.loads(done.stdout or "{}")


def test_self_hosted__sync_then_tick_runs_the_functions_in_inngest() -> None:
    BackgroundJob.objects.bulk_create([BackgroundJob(kind="test.record") for _ in range(3)])
    with InngestServer(event_key=EVENT_KEY, signing_key=SELF_HOSTED_KEY) as inngest:
        env = app_env(inngest)
        assert (
            procs.run_manage("check", "--deploy", "--fail-level", "ERROR", env=procs.child_env(**env)).returncode == 0
        )
        before, _ = registered(env)
        with Gunicorn(workers=1, LOG_LEVEL="INFO", **env) as server:
            sync = inngest.sync(f"{server.url}/api/inngest")  # what `inngest start --sdk-url` does
            after, answer = registered(env)
            tick = httpx.get(f"{server.url}/api/cron/background-jobs", headers={"Authorization": f"Bearer {SECRET}"})
            inngest.executor.wait_idle()
        logs = [json.loads(line) for line in server.output.splitlines() if line.startswith("{")]

    assert (sync.error, sync.status) == ("", 200)
    assert (before, after, answer["missing"]) == (1, 0, [])
    assert "orchestrator-process-background-jobs" in answer["served"]
    assert (tick.status_code, tick.json()["mode"]) == (202, "dispatch")
    assert BackgroundJob.objects.filter(status="succeeded").count() == 3
    assert set(FunctionRun.objects.values_list("function_id", "status")) == {
        ("process-background-jobs", "succeeded"),
        ("background-maintenance", "succeeded"),
    }
    assert [line["message"] for line in logs if line.get("action") == "inngest_sync"] == ["app registered with Inngest"]


def test_self_hosted__a_registration_inngest_refuses_fails_the_sync_and_says_why() -> None:
    with InngestServer(event_key=EVENT_KEY, signing_key=SELF_HOSTED_KEY) as inngest:
        env = app_env(inngest, RECONCILE_CRON="0 */5 * * * *")  # six fields: a schedule Inngest cannot read
        with Gunicorn(workers=1, **env) as server:
            sync = inngest.sync(f"{server.url}/api/inngest")
            with InngestServer(event_key=EVENT_KEY, signing_key="ab" * 32) as impostor:  # with another key
                refused = impostor.sync(f"{server.url}/api/inngest")
            status, answer = registered(env)
        logs = [json.loads(line) for line in server.output.splitlines() if line.startswith("{")]

    assert sync.status == 400  # what Inngest shows of it is the app's message:
    assert sync.error.startswith(f"Inngest refused the registration at {inngest.url}/fn/register: 400 At least one")
    [error] = [line for line in logs if line.get("action") == "inngest_sync"]
    assert (error["level"], error["status"]) == ("ERROR", 400)
    assert "run 'python manage.py check'" in error["message"]
    assert (refused.status, refused.error) == (401, "unauthorized")  # a server with another key cannot sync the app
    assert status == 1 and "orchestrator-process-background-jobs" in answer["missing"]
