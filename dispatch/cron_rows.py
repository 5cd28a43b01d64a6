"""Each registered cron job as an operator reads it: the admin's Cron jobs page and `manage.py cron_jobs`.

Its schedule in words and its time zone, its next fire times, its last window, the
windows missed in the last 24 hours, how late the cron service's ticks came (the
last one and the p95 over 24 hours), its drift, and its pause.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count

from core.aggregates import percentiles
from core.timefmt import iso_utc
from dispatch.models import CronJobState, DispatchWindow
from dispatch.registry import CronJob, cron_jobs
from dispatch.timetable import FixedWindows, next_starts

RECENT = timedelta(hours=24)
NEXT = 5
Source = DispatchWindow.Source


@dataclass(frozen=True)
class CronJobRow:
    """One registered cron job as the page and the command show it."""

    job: CronJob
    state: CronJobState | None
    last: DispatchWindow | None
    next_starts: list[datetime]
    missed: int
    lateness_ms: int | None  # the cron service's last tick's
    lateness_p95_ms: int | None  # over the last 24 hours

    @property
    def description(self) -> str:
        return self.job.timetable.describe()

    @property
    def catch_up(self) -> str:
        return f"all (at most {self.job.catch_up_max})" if self.job.catch_up == "all" else self.job.catch_up

    @property
    def paused(self) -> bool:
        return self.state is not None and self.state.paused

    @property
    def drift_ticks(self) -> int:
        return self.state.drift_ticks if self.state is not None else 0

    def as_json(self) -> dict[str, Any]:
        """Return the row as `manage.py cron_jobs --json` prints it."""
        timetable = self.job.timetable
        last = self.last
        return {
            "name": self.job.name,
            "schedule": timetable.schedule,
            "windowSeconds": timetable.seconds if isinstance(timetable, FixedWindows) else None,
            "timezone": timetable.timezone,
            "description": self.description,
            "next": [iso_utc(start) for start in self.next_starts],
            "lastWindow": None
            if last is None
            else {
                "dispatchKey": last.dispatch_key,
                "windowStart": iso_utc(last.window_start),
                "status": last.status,
                "mode": last.mode or None,
                "source": last.source,
            },
            "paused": self.paused,
            "catchUp": self.job.catch_up,
            "missedLast24h": self.missed,
            "latenessSeconds": _seconds(self.lateness_ms),
            "latenessP95Seconds": _seconds(self.lateness_p95_ms),
            "driftTicks": self.drift_ticks,
        }


def cron_job_rows(*, now: datetime, upcoming: int = NEXT) -> list[CronJobRow]:
    """Return every registered cron job's row, in registry order; raise RegistryError when the registry is bad.

    A few queries per job (its last window, its last cron tick, its lateness p95), as
    an operator's page or command can afford.
    """
    jobs = list(cron_jobs().values())
    states = {state.job: state for state in CronJobState.objects.select_related("paused_by", "resumed_by")}
    missed = dict(
        DispatchWindow.objects.filter(status=DispatchWindow.Status.MISSED, window_start__gte=now - RECENT)
        .values_list("job")
        .annotate(n=Count("pk"))
        .values_list("job", "n")
    )
    rows = []
    for job in jobs:
        ticked = DispatchWindow.objects.filter(job=job.name, source=Source.CRON, lateness_ms__isnull=False)
        rows.append(
            CronJobRow(
                job=job,
                state=states.get(job.name),
                last=DispatchWindow.objects.filter(job=job.name).order_by("-window_start", "-created_at").first(),
                next_starts=next_starts(job.timetable, now=now, count=upcoming),
                missed=missed.get(job.name, 0),
                lateness_ms=ticked.order_by("-window_start").values_list("lateness_ms", flat=True).first(),
                lateness_p95_ms=percentiles(ticked.filter(window_start__gte=now - RECENT), "lateness_ms", [0.95])[0.95],
            )
        )
    return rows


def _seconds(milliseconds: int | None) -> float | None:
    return None if milliseconds is None else milliseconds / 1000
