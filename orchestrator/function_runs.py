"""The health panel's "By function" table: each Inngest function's runs over the period, failing functions first.

A run is counted when it started (as the SLO report counts runs): a re-run today of an
older window's function (a requeued letter, a back-fill) counts, failing or not. Every
registered function has its row, with zeros when it has not run: a function that never
runs is worth seeing too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Max, Q

from core.display import changelist_url
from dispatch.exceptions import RegistryError
from dispatch.registry import cron_jobs
from runs.models import FunctionRun

Status = FunctionRun.Status


@dataclass(frozen=True)
class FunctionRuns:
    """One function's runs of the period: how many, by status, and when the last failed one started."""

    function_id: str
    runs: int = 0
    succeeded: int = 0
    running: int = 0
    failed: int = 0
    last_failure: datetime | None = None

    @property
    def url(self) -> str:
        return changelist_url(FunctionRun, function_id=self.function_id)

    @property
    def failed_url(self) -> str:
        return changelist_url(FunctionRun, function_id=self.function_id, status__exact=Status.FAILED)


def function_runs(*, since: datetime, now: datetime) -> list[FunctionRuns]:
    """Return each function's runs started from `since` to `now`: the most failed runs first."""
    rows = {
        row["function_id"]: FunctionRuns(**row)
        for row in FunctionRun.objects.filter(started_at__gte=since, started_at__lte=now)
        .values("function_id")
        .annotate(
            runs=Count("pk"),
            succeeded=Count("pk", filter=Q(status=Status.SUCCEEDED)),
            running=Count("pk", filter=Q(status=Status.RUNNING)),
            failed=Count("pk", filter=Q(status=Status.FAILED)),
            last_failure=Max("started_at", filter=Q(status=Status.FAILED)),
        )
        .order_by()
    }
    for function_id in registered_functions():
        rows.setdefault(function_id, FunctionRuns(function_id))
    return sorted(rows.values(), key=lambda row: (-row.failed, -row.running, -row.runs, row.function_id))


def registered_functions() -> list[str]:
    """Return the function ids the cron registry serves (none when the registry is invalid: the panel says so)."""
    try:
        return [unit.function_id for job in cron_jobs().values() for unit in job.units]
    except RegistryError:
        return []
