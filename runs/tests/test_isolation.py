"""Misbehaving handlers end neither an inline tick nor an Inngest drain step: each job's outcome is its own."""

from __future__ import annotations

from datetime import datetime

import pytest

from dispatch.registry import get_cron_job
from dispatch.services import dispatch_tick
from runs.models import FunctionRunAttempt
from runs.tests.test_functions import PROCESS, event
from testsupport.executor import Executor
from testsupport.unruly import assert_each_outcome_is_its_own, enqueue_between_neighbours, succeeding

pytestmark = pytest.mark.django_db(transaction=True)

# Raised through the machinery before: exits, interrupts, the connection closed, the transaction left aborted.
KINDS = [
    "unruly.system_exit",
    "unruly.keyboard_interrupt",
    "testsupport.tasks.exits",
    "unruly.close_connection",
    "unruly.swallowed_raw_error",
    "unruly.raw_statement_fails",
    "unruly.unprintable",
]


def test_dispatch_tick__an_inline_drain_goes_on_past_misbehaving_handlers(now: datetime) -> None:
    neighbours, bad = enqueue_between_neighbours(now, KINDS)
    cron_job = get_cron_job("background-jobs")
    assert cron_job is not None

    result = dispatch_tick(job=cron_job, now=now, source="cron", correlation_id="corr-1")

    assert (result.status_code, result.body["mode"], result.body.get("error")) == (200, "inline", None)
    drained = result.body["summary"]["process-background-jobs"]
    assert (drained["claimed"], drained["succeeded"], drained["retried"]) == (
        len(neighbours) + len(bad),
        len(neighbours) + succeeding(KINDS),
        len(bad) - succeeding(KINDS),
    )
    assert_each_outcome_is_its_own(neighbours, bad)


def test_process_function__a_drain_step_goes_on_past_misbehaving_handlers(executor: Executor, now: datetime) -> None:
    neighbours, bad = enqueue_between_neighbours(now, KINDS)

    [run] = executor.deliver(event(PROCESS))

    assert run.status == "completed"
    assert (run.output["claimed"], run.output["succeeded"]) == (len(neighbours) + len(bad), len(neighbours))
    # One attempt of the drain step, and it succeeded: no handler failed it.
    assert list(FunctionRunAttempt.objects.values_list("step", "attempt", "status")) == [("drain-1", 1, "succeeded")]
    assert_each_outcome_is_its_own(neighbours, bad)
