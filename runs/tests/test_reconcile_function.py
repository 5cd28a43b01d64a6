"""`reconcile-windows`: served at /api/inngest with its cron trigger, run by the loopback executor's schedule."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import inngest
import pytest
from django.utils import timezone

from dispatch import keys
from dispatch.models import DispatchWindow
from runs.functions import build_functions
from runs.models import FunctionRun
from testsupport.executor import Executor

pytestmark = pytest.mark.django_db(transaction=True)


def test_reconcile_function__served_with_its_cron_trigger_and_run_by_the_schedule(executor: Executor) -> None:
    start = keys.window_start(timezone.now() - timedelta(hours=1), 300)
    DispatchWindow.objects.create(
        dispatch_key=keys.dispatch_key("counter", start), job="counter", status="enqueued", mode="dispatch",
        source="cron", correlation_id="tick", window_start=start, window_seconds=300, requested_at=start,
    )  # fmt: skip
    function = executor.functions["orchestrator-reconcile-windows"]  # as the SDK's sync payload declares it

    run = executor.fire_cron(function.id)

    assert (function.cron, function.trigger_event, function.max_attempts, function.concurrency) == (
        "*/5 * * * *",
        "",
        1,
        1,
    )
    assert run.event["name"] == "inngest/scheduled.timer"
    assert run.status == "completed", run.error
    missed = DispatchWindow.objects.filter(job="counter", status="missed", source="reconciler")
    assert run.output["missed"] == missed.count() >= 9
    assert run.output["jobs"]["counter"]["missed"] == run.output["missed"]
    assert not FunctionRun.objects.exists()  # the reconciler has no window of its own in the run ledger


@pytest.mark.parametrize(("schedule", "served"), [("", False), ("*/15 * * * *", True)])
def test_build_functions__the_reconciler_is_served_on_reconcile_cron_unless_it_is_empty(
    settings: Any, schedule: str, served: bool
) -> None:
    settings.RECONCILE_CRON = schedule

    ids = [function.id for function in build_functions(inngest.Inngest(app_id="orchestrator", is_production=False))]

    assert ("orchestrator-reconcile-windows" in ids) is served
