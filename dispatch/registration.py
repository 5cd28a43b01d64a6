"""Since when each cron job has been registered with its schedule, as the reconciler sees the registry.

A job's windows are due only while it is registered with the schedule that makes
them: windows while it was missing from `CRON_JOBS` are not expected of it, and a
change of its schedule (`window_seconds`, `schedule`, `timezone`) realigns the
reconciler on the new windows rather than checking the old ones. Each reconcile
pass records the registry it runs with: the jobs gone from it (`unregistered_at`),
and each registered job's schedule; a job that comes back, or whose schedule
changed, is due from then on (`schedule_since`). A job's state row is kept when it
leaves the registry, so its pause and watermark come back with it.

What the reconciler cannot see it cannot record: a job removed and added back
between two passes (every few minutes) keeps its windows due.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from dispatch.models import CronJobState
from dispatch.registry import CronJob

logger = logging.getLogger(__name__)


def registry_note(names: Iterable[str], *, now: datetime) -> int:
    """Record that every job not in `names` has left the registry (from now); return how many just left."""
    gone = CronJobState.objects.filter(unregistered_at__isnull=True).exclude(job__in=list(names))
    left = gone.update(unregistered_at=now, updated_at=now)
    if left:
        logger.warning("cron jobs left the registry", extra={"action": "reconcile", "jobs": left})
    return left


def registration_check(job: CronJob, state: CronJobState, *, now: datetime) -> CronJobState:
    """Return the job's state once it records the job's current schedule and since when it holds.

    A job back in the registry, or registered with another schedule, is due from
    `now`: the windows before are the old schedule's (or none at all), and the outage
    the reconciler was counting ends. A state that never recorded a schedule (made
    before it was kept) takes the current one as it is.
    """
    signature = job.timetable.signature
    if state.unregistered_at is None and state.schedule == signature:
        return state
    changes: dict[str, object] = {"schedule": signature, "unregistered_at": None, "updated_at": now}
    if state.unregistered_at is not None or state.schedule:
        changes |= {"schedule_since": now, "outage_from": None, "outage_caught_up": 0}
    changed = CronJobState.objects.filter(
        pk=state.pk, schedule=state.schedule, unregistered_at=state.unregistered_at
    ).update(**changes)
    if changed and "schedule_since" in changes:
        logger.warning(
            "cron job registered with a new schedule: its windows are due from now",
            extra={
                "action": "reconcile",
                "job": job.name,
                "schedule": signature,
                "previous": state.schedule,
                "returned": state.unregistered_at is not None,
            },
        )
    state.refresh_from_db()
    return state
