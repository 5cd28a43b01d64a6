"""The health panel on the admin index: the SLO report's figures, an hourly chart, runs by function, the last windows.

The figures are `orchestrator.slo.slo_report_build` over the last 24 hours (the same
numbers `orchestrator_report` prints); the chart counts windows and runs by outcome per
hour (a window's status, or `inline_crashed` for an inline window whose run crashed;
never its mode: a failed publish keeps mode `dispatch`), with the backlog from the
queue-health snapshots. Windows and runs are filed under the hour their window starts, not
when they were recorded. The last windows of each job are in window order, newest first.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db.models import Count, Max
from django.db.models.functions import TruncHour
from django.urls import reverse

from core.display import changelist_url
from dispatch.exceptions import RegistryError
from dispatch.models import INLINE_CRASHED_OUTCOME, WINDOW_OUTCOME, DispatchWindow
from dispatch.registry import cron_jobs
from jobs.models import QueueHealthSnapshot
from orchestrator.chart import Chart, Hour, hourly_chart
from orchestrator.function_runs import FunctionRuns, function_runs
from orchestrator.slo import SloReport, slo_report_build
from orchestrator.slo_metrics import Metric
from runs.models import DeadLetter, FunctionRun

HOURS = 24
WINDOWS_PER_JOB = 5


@dataclass(frozen=True)
class Tile:
    """One figure of the panel: its value, what it is measured against, and whether that is fine."""

    label: str
    value: str
    detail: str
    tone: str  # good, bad, warn or calm
    url: str = ""


@dataclass(frozen=True)
class JobWindows:
    job: str
    windows: list[DispatchWindow]


@dataclass(frozen=True)
class Dashboard:
    now: datetime
    since: datetime
    report: SloReport
    tiles: list[Tile]
    jobs: list[JobWindows]
    registry_error: str
    hours: list[Hour]
    chart: Chart
    functions: list[FunctionRuns]

    @property
    def table(self) -> list[dict[str, Any]]:
        """Return the chart's numbers as rows (the accessible table under the chart)."""
        return [
            {
                "hour": hour.start,
                "windows": sum(hour.windows.values()),
                "failed_windows": hour.windows.get(DispatchWindow.Status.DISPATCH_FAILED, 0),
                "crashed_windows": hour.windows.get(INLINE_CRASHED_OUTCOME, 0),
                "missed_windows": hour.windows.get(DispatchWindow.Status.MISSED, 0),
                "abandoned_windows": hour.windows.get(DispatchWindow.Status.ABANDONED, 0),
                "paused_windows": hour.windows.get(DispatchWindow.Status.PAUSED, 0),
                "runs": sum(hour.runs.values()),
                "failed_runs": hour.runs.get(FunctionRun.Status.FAILED, 0),
                "backlog": hour.backlog,
            }
            for hour in self.hours
        ]


def dashboard_build(*, now: datetime, hours: int = HOURS, windows_per_job: int = WINDOWS_PER_JOB) -> Dashboard:
    """Return the health panel as of `now`, over the last `hours` hours."""
    since = now - timedelta(hours=hours)
    report = slo_report_build(since=since, now=now)
    jobs, registry_error = last_windows(limit=windows_per_job)
    buckets = hourly_buckets(now=now, hours=hours)
    return Dashboard(
        now=now,
        since=since,
        report=report,
        tiles=tiles(report),
        jobs=jobs,
        registry_error=registry_error,
        hours=buckets,
        chart=hourly_chart(buckets),
        functions=function_runs(since=since, now=now),
    )


def last_windows(*, limit: int) -> tuple[list[JobWindows], str]:
    """Return each registered cron job's latest windows, the newest window first (and the registry's error, if any)."""
    try:
        names = list(cron_jobs())
    except RegistryError as exc:
        return [], str(exc)
    return [
        JobWindows(
            job=name, windows=list(DispatchWindow.objects.filter(job=name).order_by("-window_start", "-id")[:limit])
        )
        for name in names
    ], ""


def hourly_buckets(*, now: datetime, hours: int) -> list[Hour]:
    """Return the last `hours` clock hours up to `now` (the current one included), oldest first.

    A window is counted in the hour it starts, and a run in the hour its window starts,
    however late either was recorded: a back-filled, caught-up or re-published window
    (and its run) sits with its neighbours, and an hour's two bars tell of the same windows.
    """
    current = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    starts = [current - timedelta(hours=offset) for offset in range(hours - 1, -1, -1)]
    first = starts[0]
    windows: dict[datetime, dict[str, int]] = defaultdict(dict)
    for hour, outcome, count in (
        DispatchWindow.objects.filter(window_start__gte=first, window_start__lte=now)
        .annotate(hour=TruncHour("window_start", tzinfo=UTC), ended_as=WINDOW_OUTCOME)
        .values_list("hour", "ended_as")
        .annotate(n=Count("pk"))
    ):
        windows[hour][outcome] = count
    runs: dict[datetime, dict[str, int]] = defaultdict(dict)
    for hour, status, count in (
        FunctionRun.objects.filter(window_start__gte=first, window_start__lte=now)
        .annotate(hour=TruncHour("window_start", tzinfo=UTC))
        .values_list("hour", "status")
        .annotate(n=Count("pk"))
    ):
        runs[hour][status] = count
    backlog = {
        row["hour"]: row["peak"]
        for row in QueueHealthSnapshot.objects.filter(taken_at__gte=first, taken_at__lte=now)
        .annotate(hour=TruncHour("taken_at", tzinfo=UTC))
        .values("hour")
        .annotate(peak=Max("ready"))
    }
    return [Hour(start=s, windows=windows[s], runs=runs[s], backlog=backlog.get(s)) for s in starts]


def tiles(report: SloReport) -> list[Tile]:
    """Return the panel's figures from the SLO report."""
    m = {metric.name: metric for metric in report.metrics}
    p95, failures, duplicates, manual = (
        m["dispatchLatencyP95Ms"],
        m["enqueueFailureRate"],
        m["duplicateRuns"],
        m["manualReruns"],
    )
    suppressed, backlog, lag, peak = (
        m["suppressedDuplicates"],
        m["backlog"],
        m["queueLagSeconds"],
        m["peakQueueLagSeconds"],
    )
    unresolved = m["unresolvedDeadLetters"]
    missed, stale, abandoned = m["missedWindows"], m["stalePending"], m["abandonedRuns"]
    paused_jobs: list[str] = missed.detail["pausedJobs"]
    return [
        Tile(
            "Dispatch latency p95",
            "no dispatches" if p95.value is None else f"{p95.value:,.0f} ms",
            f"gate ≤ {settings.SLO_DISPATCH_P95_MS:,.0f} ms · {_count(p95.detail['windows'], 'dispatched window')}",
            _tone(p95),
        ),
        Tile(
            "Enqueue failures",
            "no publishes" if failures.value is None else f"{failures.value:.2%}",
            f"{failures.detail['failedAttempts']:,} of "
            f"{_count(failures.detail['publishAttempts'], 'publish attempt')} · "
            f"gate ≤ {settings.SLO_MAX_ENQUEUE_FAILURE_RATE:.2%}",
            _tone(failures),
            changelist_url(DispatchWindow, status=DispatchWindow.Status.DISPATCH_FAILED),
        ),
        Tile(
            "Suppressed duplicates",
            f"{_count(suppressed.value or 0, 'run')} · {_count(suppressed.detail['duplicateTicks'], 'tick')}",
            f"duplicate runs: {duplicates.value:,.0f} (gate ≤ {settings.SLO_MAX_DUPLICATE_RUNS}) · "
            f"manual re-runs: {manual.value:,.0f}",
            _tone(duplicates),
        ),
        Tile(
            "Backlog",
            _count(backlog.value or 0, "due job"),
            f"{backlog.detail['pending']:,} pending · {backlog.detail['running']:,} running",
            "calm",
        ),
        Tile(
            "Queue lag",
            f"{lag.value:,.0f} s",
            f"peak {peak.value:,.0f} s in 24 h · gate ≤ {settings.SLO_MAX_QUEUE_LAG_SECONDS:,.0f} s",
            "bad" if lag.passed is False or peak.passed is False else "good",
        ),
        Tile(
            "Unresolved dead letters",
            f"{unresolved.value:,.0f}",
            f"{unresolved.detail['createdInPeriod']:,} new in 24 h",
            "bad" if unresolved.value else "good",
            changelist_url(DeadLetter, state="unresolved"),
        ),
        Tile(
            "Missed windows",
            f"{missed.value:,.0f}",
            f"no tick came; nothing ran · gate ≤ {settings.SLO_MAX_MISSED_WINDOWS}",
            _tone(missed),
            changelist_url(DispatchWindow, status__exact=DispatchWindow.Status.MISSED),
        ),
        Tile(
            "Paused",
            _count(len(paused_jobs), "job"),
            f"{', '.join(paused_jobs) or 'none paused'} · {_count(missed.detail['pausedWindows'], 'paused window')} "
            "in 24 h",
            "warn" if paused_jobs else "calm",
            reverse("admin:dispatch_cronjobstate_changelist"),
        ),
        Tile(
            "Abandoned",
            f"{_count(abandoned.detail['runs'], 'run')} · {_count(abandoned.detail['windows'], 'window')}",
            f"{stale.value:,.0f} stale pending now · gates ≤ {settings.SLO_MAX_ABANDONED_RUNS} "
            f"and ≤ {settings.SLO_MAX_STALE_PENDING}",
            "bad" if abandoned.passed is False or stale.passed is False else "good",
            changelist_url(DispatchWindow, status__exact=DispatchWindow.Status.ABANDONED),
        ),
    ]


def _count(number: float, noun: str) -> str:
    """Return a count with its noun, singular for one, with thousands separators: "1 run", "12,345 runs"."""
    return f"{number:,.0f} {noun}{'' if number == 1 else 's'}"


def _tone(metric: Metric) -> str:
    return {True: "good", False: "bad", None: "calm"}[metric.passed]
