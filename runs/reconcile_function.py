"""`reconcile-windows`: the reconciler as an Inngest function on a cron schedule (RECONCILE_CRON).

Inngest's own scheduler calls it, so in dispatch mode a cron service that has gone
silent is noticed even though no tick comes to run maintenance. It has no dispatch
window (Inngest starts it with an `inngest/scheduled.timer` event): it is not a
cron job of the registry and has no run-ledger row; its summary is its output.
"""

from __future__ import annotations

from typing import Any

import inngest
from django.conf import settings
from django.utils import timezone

from runs.reconcile import reconcile

RECONCILE_FUNCTION = "reconcile-windows"


def reconcile_function(client: inngest.Inngest) -> inngest.Function[Any]:
    """Return the function that reconciles on RECONCILE_CRON, one run at a time, not retried (the next comes soon)."""

    @client.create_function(
        fn_id=RECONCILE_FUNCTION,
        name=RECONCILE_FUNCTION,
        trigger=inngest.TriggerCron(cron=settings.RECONCILE_CRON.strip()),
        retries=0,
        concurrency=[inngest.Concurrency(limit=1)],
    )
    def function(ctx: inngest.ContextSync) -> Any:
        return ctx.step.run("reconcile", lambda: reconcile(now=timezone.now()))

    return function
