"""The catch-up policy, counted per outage (docs/operations.md, "Catch-up").

An outage is a run of consecutive windows no tick came for; the first window a tick
claims ends it. However many reconcile passes see an outage still going on, its
budget is the policy's: `latest` catches up one window of it (the most recent when
the reconciler first finds it), `all` at most `catch_up_max` (the most recent of
each pass, while the budget lasts). The rest are recorded `missed`. Each outage has
its own budget, so a cron service that comes back and fails again is caught up again;
one that stays silent has its job run by nobody, and the missed-windows gate says so.

The outage still going on at the watermark, and its catch-ups so far, are kept on the
job's state (`outage_from`, `outage_caught_up`) from one pass to the next.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from dispatch.models import CronJobState
from dispatch.registry import CronJob


@dataclass
class Outage:
    """Windows of one outage found in this pass, oldest first, and its catch-ups in earlier passes."""

    starts: list[datetime] = field(default_factory=list)
    caught_up_before: int = 0
    since: datetime | None = None  # its first window (an earlier pass's, when it goes on from one)
    open: bool = False  # still going on at the pass's last window (no tick came after it)


def outages(missing: list[datetime], ticked: list[datetime], state: CronJobState) -> list[Outage]:
    """Split the pass's windows without a tick into outages, oldest first.

    The first goes on from the outage open at the watermark, if any (and no tick
    came in between): its earlier catch-ups count against its budget.
    """
    found: list[Outage] = []
    current = Outage(caught_up_before=state.outage_caught_up, since=state.outage_from)
    marks = sorted([(start, True) for start in missing] + [(start, False) for start in ticked])
    for start, without_tick in marks:
        if without_tick:
            current.starts.append(start)
            current.since = current.since or start
        else:  # a tick came: the outage (if any) is over
            if current.starts:
                found.append(current)
            current = Outage()
    if current.starts:
        current.open = True
        found.append(current)
    return found


def to_catch_up(job: CronJob, outage: Outage) -> list[datetime]:
    """Return the windows of `outage` the job's policy dispatches in this pass, oldest first."""
    budget = {"skip": 0, "latest": 1, "all": job.catch_up_max}[job.catch_up] - outage.caught_up_before
    return outage.starts[-budget:] if budget > 0 else []
