"""The reconciler against real processes: two at once, a tick killed after its claim, a run killed after claim-run.

Processes are killed for real (SIGKILL); that they have been dead long enough is
made so by moving their rows' timestamps back, never by waiting.
"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db.models import F
from django.utils import timezone

from conftest import EVENT_KEY, SIGNING_KEY
from core.timefmt import iso_utc
from dispatch import keys
from dispatch.models import DispatchWindow
from dispatch.windows import stale_after
from runs.models import DeadLetter, FunctionRun, FunctionRunAttempt
from runs.reconcile import reconcile
from runs.reconcile_settings import run_bound
from runs.triage import dead_letter_requeue
from testsupport import procs
from testsupport.event_api import EventAPI
from testsupport.executor import Executor
from testsupport.live import Gunicorn
from testsupport.models import CronRun

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

PROCESS = "background/process.requested"
MAINTENANCE = "background/maintenance.requested"
# An hourly job that catches up its three most recent missed windows (the children's registry).
HOURLY = {"name": "hourly", "window_seconds": 3600, "callable": "testsupport.crons.count_run", "catch_up": "all",
          "catch_up_max": 3}  # fmt: skip
DEADLINE_SECONDS = 60.0


def wait_for(condition: Callable[[], bool], what: str) -> None:
    """Poll the database until `condition` holds (readiness polling, not waiting for time to pass)."""
    deadline = time.monotonic() + DEADLINE_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def test_reconcile__two_processes_at_once_write_the_same_rows_once(event_api: EventAPI) -> None:
    t0 = datetime.fromisoformat("2026-03-14T00:00:00+00:00")
    DispatchWindow.objects.create(
        dispatch_key="cron:hourly:2026-03-14T00:00", job="hourly", status="enqueued", mode="dispatch", source="cron",
        correlation_id="tick", window_start=t0, window_seconds=3600, requested_at=t0,
    )  # fmt: skip
    now = t0 + timedelta(hours=12, seconds=30)  # ten hours without a tick: 01:00 … 10:00 are due
    env = procs.child_env(
        CRON_JOBS=json.dumps([HOURLY]), INNGEST_EVENT_KEY=EVENT_KEY, INNGEST_EVENT_API_BASE_URL=event_api.url
    )
    children = [procs.python_module("testsupport.reconcile_race", iso_utc(now), env=env) for _ in range(2)]

    results = procs.release_together(children, timeout=120)

    assert sum(result["missed"] for result in results) == 7
    assert sum(result["caughtUp"] for result in results) == 3
    windows = DispatchWindow.objects.filter(job="hourly", source="reconciler").order_by("window_start")
    assert [(w.window_start.hour, w.status) for w in windows] == [
        *((hour, "missed") for hour in range(1, 8)),
        *((hour, "enqueued") for hour in range(8, 11)),
    ]
    assert sorted(event_api.event_ids()) == [
        f"cron/hourly.requested:cron:hourly:2026-03-14T{hour:02d}:00" for hour in range(8, 11)
    ]  # each caught-up window published once, by one of the two
    assert not CronRun.objects.exists()  # the reconciler only publishes: the work runs in Inngest


def test_reconcile__a_tick_killed_between_claim_and_publish_is_republished_with_the_same_event_ids(
    event_api: EventAPI,
) -> None:
    at = timezone.now()
    event_api.behave("hold")  # the tick claims its window, then waits inside the publish
    tick = procs.manage(
        "dispatch_tick", "--at", iso_utc(at), "--json",
        env=procs.child_env(
            INNGEST_EVENT_KEY=EVENT_KEY, INNGEST_EVENT_API_BASE_URL=event_api.url,
            INNGEST_PUBLISH_TIMEOUT_SECONDS="60",
        ),
    )  # fmt: skip
    assert event_api.wait_for_held(timeout=DEADLINE_SECONDS), tick.communicate()
    tick.send_signal(signal.SIGKILL)
    tick.communicate(timeout=30)
    window = DispatchWindow.objects.get()
    assert (window.status, window.mode, window.source, window.claim) == ("pending", "dispatch", "manual", 1)
    key, dead_tick = window.dispatch_key, window.correlation_id
    event_api.behave("ok")

    too_soon = reconcile(now=timezone.now())  # the tick might still be publishing
    DispatchWindow.objects.update(updated_at=F("updated_at") - stale_after("dispatch") - timedelta(seconds=1))
    summary = reconcile(now=timezone.now())

    assert (too_soon["republished"], summary["republished"]) == (0, 1)
    window.refresh_from_db()
    assert (window.status, window.source, window.reclaimed_by, window.claim, window.publish_attempts) == (
        "enqueued",
        "manual",  # the dead tick claimed it first: its source stays
        "reconciler",
        2,
        2,
    )
    expected = sorted([keys.event_id(PROCESS, key), keys.event_id(MAINTENANCE, key)])
    assert sorted(window.event_ids) == sorted(event_api.event_ids()) == expected
    assert window.correlation_id == dead_tick  # its logs still lead to the tick that claimed it


def test_reconcile__an_inngest_run_killed_after_claim_run_fails_with_one_dead_letter_that_requeues(
    make_staff: Callable[..., User],
) -> None:
    key = keys.dispatch_key("stall", keys.window_start(timezone.now(), 60))
    data = {"source": "cron", "requestedAt": iso_utc(timezone.now()), "dispatchKey": key, "correlationId": "tick-9",
            "dispatchWindowStart": key[len("cron:stall:"):] + ":00Z", "dispatchWindowSeconds": 60}  # fmt: skip
    event = {"name": "cron/stall.requested", "id": f"cron/stall.requested:{key}", "data": data, "ts": 0}
    with Gunicorn(workers=1, INNGEST_SIGNING_KEY=SIGNING_KEY, INNGEST_EVENT_KEY=EVENT_KEY) as server:
        [worker] = server.wait_for_workers(1)
        executor = Executor(serve_url=f"{server.url}/api/inngest", signing_key=SIGNING_KEY)
        executor.sync()

        executor.send(event)
        # The worker dies under the call: Inngest would try the step again after its backoff, on the executor's
        # clock, which this test never moves (a retry that never comes).
        caller = threading.Thread(target=executor.run_due)
        caller.start()
        wait_for(lambda: FunctionRunAttempt.objects.filter(step="run").exists(), "the run to begin its step `run`")
        os.kill(worker, signal.SIGKILL)
        caller.join(timeout=DEADLINE_SECONDS)
        executor.stop()
    run = FunctionRun.objects.get()
    assert (run.function_id, run.dispatch_key, run.status) == ("cron-stall", key, "running")
    bound = run_bound("cron-stall")
    FunctionRun.objects.update(started_at=F("started_at") - bound - timedelta(minutes=1))
    FunctionRunAttempt.objects.update(started_at=F("started_at") - bound - timedelta(seconds=1))
    idle_since = FunctionRunAttempt.objects.get().started_at

    summary = reconcile(now=timezone.now())

    assert summary["abandonedRuns"] == 1
    run.refresh_from_db()
    assert (run.status, run.terminal_reason) == ("failed", f"abandoned: no progress since {iso_utc(idle_since)}")
    letter = DeadLetter.objects.get()
    assert letter.payload is not None
    assert (letter.function_run_id, letter.payload["event"]) == (run.pk, "cron/stall.requested")

    report = dead_letter_requeue(letter_ids=[letter.pk], user=make_staff("operator"), now=timezone.now())

    assert report.done == [letter.pk]
    letter.refresh_from_db()
    assert letter.resolution == "requeued"
    rerun = FunctionRun.objects.get(dispatch_key=letter.requeued_dispatch_key)
    assert (rerun.function_id, rerun.status, rerun.output) == ("cron-stall", "succeeded", {"stalled": False})
    assert CronRun.objects.filter(source="manual").count() == 1


def test_reconcile_command__prints_its_json_on_stdout_and_its_logs_on_stderr() -> None:
    start = keys.window_start(timezone.now() - timedelta(hours=1), 300)
    DispatchWindow.objects.create(
        dispatch_key=keys.dispatch_key("counter", start), job="counter", status="enqueued", mode="dispatch",
        source="cron", correlation_id="tick", window_start=start, window_seconds=300, requested_at=start,
    )  # fmt: skip

    child = procs.manage("reconcile", "--json", env=procs.child_env(LOG_LEVEL="INFO"))
    out, err = child.communicate(timeout=120)

    assert child.returncode == 0, err
    summary: dict[str, Any] = json.loads(out)  # the whole of stdout is the one JSON document
    assert summary["missed"] == DispatchWindow.objects.filter(status="missed").count() >= 9
    logged = [json.loads(line) for line in err.splitlines() if line.startswith("{")]
    assert [line["missed"] for line in logged if line.get("message") == "reconciled"] == [summary["missed"]]
