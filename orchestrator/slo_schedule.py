"""The report's schedule figures (orchestrator.slo): windows missed, windows stale in `pending`, abandoned work,
how late the cron service's ticks came (and which jobs it ticked off their schedule), and how long ago each cron
job's last tick came."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db.models import Min

from core.aggregates import percentiles
from core.timefmt import iso_utc
from dispatch.exceptions import RegistryError
from dispatch.models import CronJobState, DispatchWindow
from dispatch.registry import cron_jobs
from dispatch.schedule import last_cron_ticks
from dispatch.windows import stale_pending
from orchestrator.slo_metrics import Metric
from runs.models import FunctionRun

Status = DispatchWindow.Status
ABANDONED_REASON = "abandoned:"


def missed_windows_metric(*, since: datetime, now: datetime) -> Metric:
    """Return the windows the reconciler recorded `missed` in the period (no tick came; nothing ran)."""
    windows = DispatchWindow.objects.filter(created_at__gte=since, created_at__lte=now)
    return Metric(
        "missedWindows",
        "missed windows",
        windows.filter(status=Status.MISSED).count(),
        "windows",
        threshold=settings.SLO_MAX_MISSED_WINDOWS,
        setting="SLO_MAX_MISSED_WINDOWS",
        detail={
            "pausedWindows": windows.filter(status=Status.PAUSED).count(),
            "pausedJobs": sorted(CronJobState.objects.filter(paused=True).values_list("job", flat=True)),
        },
    )


def stale_pending_metric(*, since: datetime, now: datetime) -> Metric:
    """Return the windows pending past their stale bound now, whenever they were claimed (their tick died)."""
    stale = DispatchWindow.objects.filter(stale_pending(now=now))
    oldest = stale.aggregate(since=Min("updated_at"))["since"]
    return Metric(
        "stalePending",
        "windows stale in pending",
        stale.count(),
        "windows",
        threshold=settings.SLO_MAX_STALE_PENDING,
        setting="SLO_MAX_STALE_PENDING",
        detail={"oldestPendingSince": iso_utc(oldest) if oldest is not None else None},
    )


def abandoned_metric(*, since: datetime, now: datetime) -> Metric:
    """Return the runs and the inline windows the reconciler abandoned in the period."""
    runs = FunctionRun.objects.filter(
        status=FunctionRun.Status.FAILED,
        terminal_reason__startswith=ABANDONED_REASON,
        finished_at__gte=since,
        finished_at__lte=now,
    ).count()
    windows = DispatchWindow.objects.filter(status=Status.ABANDONED, created_at__gte=since, created_at__lte=now).count()
    return Metric(
        "abandonedRuns",
        "abandoned runs and windows",
        runs + windows,
        "",
        threshold=settings.SLO_MAX_ABANDONED_RUNS,
        setting="SLO_MAX_ABANDONED_RUNS",
        detail={"runs": runs, "windows": windows},
    )


def tick_lateness_metric(*, since: datetime, now: datetime) -> Metric:
    """Return the p95 of how late the cron service's ticks came for their windows in the period (the gate).

    A window's lateness is its first cron tick's arrival minus the window's start
    (dispatch.services); the jobs whose ticks came off their schedule in the period
    (drift) are named beside it.
    """
    ticked = DispatchWindow.objects.filter(
        source=DispatchWindow.Source.CRON, lateness_ms__isnull=False, created_at__gte=since, created_at__lte=now
    )
    p95, latest = percentiles(ticked, "lateness_ms", (0.95, 1.0)).values()
    drifting = CronJobState.objects.filter(last_drift_at__gte=since, last_drift_at__lte=now)
    return Metric(
        "tickLatenessP95Seconds",
        "tick lateness p95",
        None if p95 is None else p95 / 1000,
        "s",
        threshold=settings.SLO_MAX_TICK_LATENESS_SECONDS,
        setting="SLO_MAX_TICK_LATENESS_SECONDS",
        detail={
            "windows": ticked.count(),
            "maxSeconds": None if latest is None else latest / 1000,
            "driftingJobs": dict(drifting.order_by("job").values_list("job", "drift_ticks")),
        },
    )


def last_tick_metric(*, since: datetime, now: datetime) -> Metric:
    """Return how long ago each registered cron job's last tick from the cron service came (the oldest first).

    Informational: a job the cron service stopped calling shows here before its
    windows are due as missed. None for a job it never called.
    """
    try:
        names = list(cron_jobs())
    except RegistryError:
        names = []
    ages: dict[str, float | None] = dict.fromkeys(names)
    for name, opened in last_cron_ticks(names):
        ages[name] = round(max((now - opened).total_seconds(), 0.0), 3)
    known = [age for age in ages.values() if age is not None]
    return Metric(
        "lastTickAgeSeconds",
        "oldest last tick of a cron job",
        max(known) if known else None,
        "s",
        detail={"jobs": ages},
    )
