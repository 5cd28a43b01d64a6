"""The reconciler never abandons a run that Inngest will still retry: its bound covers Inngest's real waits."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from runs import ledger, orphans
from runs.models import DeadLetter, FunctionRun
from runs.tests.test_functions import event
from testsupport.inngest_server import InngestServer
from testsupport.retries import JITTER_MAX

pytestmark = pytest.mark.django_db(transaction=True)

CRASH = "cron/crash.requested"


@pytest.mark.parametrize(("retries", "budget"), [(6, 20.0), (3, 5.0)])
def test_reconcile__leaves_a_run_waiting_for_each_retry_alone_up_to_the_last(
    inngest_server: InngestServer, live_server: Any, settings: Any, retries: int, budget: float
) -> None:
    settings.INNGEST_FUNCTION_RETRIES = retries  # synced: Inngest waits 15 s, 30 s, 1 min, ... before each retry
    settings.INNGEST_STEP_BUDGET_SECONDS = budget
    inngest_server.executor.jitter = lambda: JITTER_MAX - 0.001  # the longest jitter the server draws
    assert inngest_server.sync(f"{live_server.url}/api/inngest").error == ""
    executor = inngest_server.executor
    [run] = executor.send(event(CRASH, "cron:crash:2026-03-14T15:09"))
    executor.run_due()  # the first attempt fails

    waits = []
    for _ in range(retries):
        [(waiting, due)] = executor.waiting()
        wait = due - executor.clock.now()  # how long Inngest leaves the run without a call
        idle_since = ledger.last_progress(FunctionRun.objects.get())
        summary = orphans.recover(now=idle_since + timedelta(seconds=wait))  # the instant the retry is due

        assert (waiting, summary["abandonedRuns"]) == (run, 0)
        waits.append(round(wait))
        executor.advance(wait)  # the retry comes, and fails again

    assert waits == [round(seconds + JITTER_MAX) for seconds in (15, 30, 60, 120, 300, 600)[:retries]]
    executor.settle()
    assert (run.status, run.max_attempt) == ("failed", retries)
    row = FunctionRun.objects.get()
    assert (row.status, row.terminal_reason) == ("failed", f"retries exhausted ({retries + 1}) in step run")
    assert DeadLetter.objects.get().function_run == row
