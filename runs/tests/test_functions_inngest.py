"""The functions under Inngest's own rules: 24 h idempotency, the failure event, Retry-After, non-SDK answers."""

from __future__ import annotations

import http.server
import logging
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import inngest
import pytest

from runs import ledger, orphans
from runs.models import DeadLetter, FunctionRun
from runs.tests.test_functions import PROCESS, enqueue, event
from testsupport import crons
from testsupport.executor import Executor
from testsupport.run_queue import IDEMPOTENCY_SECONDS

pytestmark = pytest.mark.django_db(transaction=True)

CRASH = ("cron/crash.requested", "cron:crash:2026-03-14T15:09")
FLAKY = ("cron/flaky.requested", "cron:flaky:2026-03-14T15:09")


def test_redelivery__after_inngest_24_hours_the_event_runs_again_and_the_ledger_does_no_work_twice(
    executor: Executor,
) -> None:
    enqueue(2)
    [first] = executor.deliver(event(PROCESS))
    executor.clock.advance(IDEMPOTENCY_SECONDS - 1)
    assert executor.deliver(event(PROCESS)) == []  # Inngest still holds the event id (and the dispatch key)

    executor.clock.advance(1)
    [again] = executor.deliver(event(PROCESS))  # 24 hours on, Inngest runs the same event again

    assert (first.output["succeeded"], again.output) == (2, {"skipped": "duplicate-window"})
    assert FunctionRun.objects.get().duplicates_suppressed == 1


def test_on_failure__the_failure_event_comes_after_the_run_ended_with_the_run_id_as_its_id(executor: Executor) -> None:
    [failed] = executor.send(event(*CRASH))
    [other] = executor.send(event(*FLAKY))  # queued beside it, and due before its failure is known

    executor.settle()

    [failure] = [e for e in executor.events if e["name"] == "inngest/function.failed"]
    assert failure["id"] == failed.run_id
    assert set(failure["data"]) == {"function_id", "run_id", "event", "events", "error", "_inngest"}
    assert (failure["data"]["function_id"], failure["data"]["run_id"]) == ("orchestrator-cron-crash", failed.run_id)
    assert failure["data"]["event"]["data"] == event(*CRASH)["data"]
    assert failure["data"]["error"]["message"] == "the crash cron job always crashes"
    [handler] = [run for run in executor.runs if run.function_id.endswith("-failure")]
    assert failed.ended_at is not None and handler.started_at >= failed.ended_at
    assert other.status == "completed"
    assert (handler.status, handler.output) == ("completed", {"deadLetter": DeadLetter.objects.get().pk})
    assert executor.deliver(failure) == []  # the same failure twice starts one handler: its id is the run id


def test_retry_after__inngest_waits_as_the_work_asks_and_the_run_is_warned_about_its_bound(
    executor: Executor, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    calls: list[str] = []

    def rate_limited(ctx: Any) -> dict[str, Any]:
        calls.append(ctx.dispatch_key)
        if len(calls) == 1:
            raise inngest.RetryAfterError("rate limited by the upstream", timedelta(hours=2))
        return {"calls": len(calls)}

    monkeypatch.setattr(crons, "fail_first_attempt", rate_limited)
    [run] = executor.send(event(*FLAKY))

    with caplog.at_level(logging.WARNING, logger="runs.steps"):
        executor.run_due()

    [(waiting, due)] = executor.waiting()
    assert (waiting, round((due - executor.clock.now()) / 60)) == (run, 120)  # not the 15 s of the backoff table
    [warning] = [record.getMessage() for record in caplog.records if record.name == "runs.steps"]
    assert warning.startswith("RetryAfterError in step run asks Inngest to wait 7200 s, more than the 330 s a run of")
    executor.advance(due - executor.clock.now())
    assert (run.status, run.output) == ("completed", {"calls": 2})


def test_retry_after__a_bound_raised_for_it_keeps_the_reconciler_off_the_waiting_run(
    executor: Executor, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.RECONCILE_RUN_BOUNDS = '{"cron-flaky": 7500}'
    monkeypatch.setattr(
        crons, "fail_first_attempt", lambda ctx: (_ for _ in ()).throw(inngest.RetryAfterError("later", 7_200_000))
    )
    executor.send(event(*FLAKY))
    executor.run_due()
    [(_, due)] = executor.waiting()

    idle_since = ledger.last_progress(FunctionRun.objects.get())
    summary = orphans.recover(now=idle_since + timedelta(seconds=due - executor.clock.now()))

    assert summary["abandonedRuns"] == 0


@pytest.fixture
def login_page() -> Iterator[str]:
    """A server that answers every request 200 with an HTML page, as a proxy in front of the app might."""

    class Page(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(b"<html>Please sign in</html>")

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api/inngest"
    server.shutdown()
    server.server_close()


def test_answers__a_2xx_not_from_the_sdk_is_a_failed_attempt(executor: Executor, login_page: str) -> None:
    for function in executor.functions.values():
        function.url = login_page  # Inngest reaches a proxy's sign-in page instead of the app

    [run] = executor.deliver(event(*CRASH))

    assert (run.status, run.max_attempt, run.requests) == ("failed", 3, 4)  # tried, and retried, never "completed"
    assert run.error is not None and run.error["message"] == "response did not come from an Inngest SDK"
    assert not FunctionRun.objects.exists()
