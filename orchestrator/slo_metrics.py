"""The SLO report's figures (orchestrator.slo): each a Metric, from SQL aggregates over [since, now]."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import BooleanField, Count, Max, Q, Sum
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce

from core.aggregates import percentiles
from core.timefmt import iso_utc
from dispatch import keys
from dispatch.models import DispatchWindow
from dispatch.windows import stale_pending
from jobs.health import queue_health_measure
from jobs.models import QueueHealthSnapshot
from runs.models import DeadLetter, FunctionRun
from runs.services import dead_letters_unresolved

DISPATCH_MODES = (DispatchWindow.Mode.DISPATCH, DispatchWindow.Mode.DISPATCH_FAILED)
# A run whose key has something after its window (`cron:<job>:YYYY-MM-DDTHH:MM:…`, a fourth colon): the one shape
# that can run a window twice. LIKE, not a regular expression: this filters every run of the period, and PostgreSQL's
# regular expressions cost three times as much.
SUFFIXED_KEY = RawSQL(
    f"{FunctionRun._meta.db_table}.dispatch_key LIKE %s", ("cron:%:%:%:%",), output_field=BooleanField()
)
LATENCY_FRACTIONS = (0.5, 0.95, 0.99)


@dataclass(frozen=True)
class Metric:
    """One figure of the report; gated when it has a threshold (the value must not exceed it)."""

    name: str
    label: str
    value: float | None
    unit: str = ""
    threshold: float | None = None
    setting: str = ""
    detail: Mapping[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool | None:
        """Return whether the gate holds (no data holds it); None for an informational figure."""
        if self.threshold is None:
            return None
        return self.value is None or self.value <= self.threshold

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "value": self.value,
            "unit": self.unit,
            "threshold": self.threshold,
            "pass": self.passed,
        }
        if self.setting:
            body["setting"] = self.setting
        return body | dict(self.detail)


def latency_metrics(*, since: datetime, now: datetime) -> list[Metric]:
    """Return dispatch latency p50/p95/p99 over the windows the period dispatched (gate: p95)."""
    windows = DispatchWindow.objects.filter(
        mode__in=DISPATCH_MODES, created_at__gte=since, created_at__lte=now, latency_ms__isnull=False
    )
    values = percentiles(windows, "latency_ms", LATENCY_FRACTIONS)
    detail = {"windows": windows.count()}
    p50, p95, p99 = (values[fraction] for fraction in LATENCY_FRACTIONS)
    return [
        Metric("dispatchLatencyP50Ms", "dispatch latency p50", p50, "ms", detail=detail),
        Metric(
            "dispatchLatencyP95Ms",
            "dispatch latency p95",
            p95,
            "ms",
            threshold=settings.SLO_DISPATCH_P95_MS,
            setting="SLO_DISPATCH_P95_MS",
            detail=detail,
        ),
        Metric("dispatchLatencyP99Ms", "dispatch latency p99", p99, "ms", detail=detail),
    ]


def enqueue_failure_metric(*, since: datetime, now: datetime) -> Metric:
    """Return failed publish attempts / publish attempts over the period's settled windows.

    An enqueued window made exactly one successful attempt, so all its others
    failed; every attempt of any other settled window failed. A window still
    `pending` is publishing right now and is left out, unless it has been pending
    past its stale bound: its tick died, and its attempts count as failed.
    """
    row = (
        DispatchWindow.objects.filter(created_at__gte=since, created_at__lte=now, publish_attempts__gt=0)
        .filter(~Q(status=DispatchWindow.Status.PENDING) | stale_pending(now=now))
        .aggregate(
            attempts=Coalesce(Sum("publish_attempts"), 0),
            succeeded=Count("pk", filter=Q(status=DispatchWindow.Status.ENQUEUED)),
        )
    )
    attempts, failed = row["attempts"], row["attempts"] - row["succeeded"]
    return Metric(
        "enqueueFailureRate",
        "enqueue-failure rate",
        round(failed / attempts, 6) if attempts else None,
        "ratio",
        threshold=settings.SLO_MAX_ENQUEUE_FAILURE_RATE,
        setting="SLO_MAX_ENQUEUE_FAILURE_RATE",
        detail={"publishAttempts": attempts, "failedAttempts": failed},
    )


def rerun_metrics(*, since: datetime, now: datetime) -> list[Metric]:
    """Return the windows run more than once: duplicate runs (gated) and manual re-runs (reported, not gated).

    Each is Σ (runs − 1) over each (function, window) that more than one run did
    work for, over the runs started in the period that did not fail (re-running a
    window whose run failed, a requeued dead letter, is a retry); a run's window is
    its key without what follows the window. The unique constraint gives every key
    one run, so a window runs again only under a suffixed key: those few runs are
    read, not every run of the period. A forced re-run (`:manual-<8 hex>`, from
    `dispatch_tick --force` or the admin's Trigger now) is an operator's decision;
    any other suffix is one no tick makes, which the functions refuse: a duplicate
    run is what the guards should have prevented. (A key off its window's start is
    refused too, but is not judged here: a change of a job's window would make one
    of every earlier key.)
    """
    runs = FunctionRun.objects.filter(started_at__gte=since, started_at__lte=now).exclude(
        status=FunctionRun.Status.FAILED
    )
    suffixed = list(runs.filter(SUFFIXED_KEY).values_list("function_id", "dispatch_key"))
    windows = {(function_id, keys.window_key(key)) for function_id, key in suffixed}
    windowed = set(
        runs.filter(
            function_id__in={function_id for function_id, _ in windows},
            dispatch_key__in={window for _, window in windows},
        ).values_list("function_id", "dispatch_key")
    )
    duplicates, duplicated = _runs_again([run for run in suffixed if not keys.is_manual(run[1])], windowed)
    manual, rerun = _runs_again([run for run in suffixed if keys.is_manual(run[1])], windowed)
    return [
        Metric(
            "duplicateRuns",
            "duplicate runs per window",
            duplicates,
            "runs",
            threshold=settings.SLO_MAX_DUPLICATE_RUNS,
            setting="SLO_MAX_DUPLICATE_RUNS",
            detail={"windowsWithDuplicates": duplicated},
        ),
        Metric("manualReruns", "manual re-runs of a window", manual, "runs", detail={"windows": rerun}),
    ]


def _runs_again(suffixed: list[tuple[str, str]], windowed: set[tuple[str, str]]) -> tuple[int, int]:
    """Return (runs beyond each window's first, windows run more than once), counting these suffixed runs and
    each window's own run, if it had one (`windowed`)."""
    per_window = Counter((function_id, keys.window_key(key)) for function_id, key in suffixed)
    again = [count + (window in windowed) - 1 for window, count in per_window.items()]
    return sum(again), sum(1 for count in again if count > 0)


def suppressed_duplicates_metric(*, since: datetime, now: datetime) -> Metric:
    """Return the duplicates the guards stopped: second Inngest runs, and ticks of a claimed window."""
    runs = FunctionRun.objects.filter(started_at__gte=since, started_at__lte=now).aggregate(
        n=Coalesce(Sum("duplicates_suppressed"), 0)
    )
    ticks = DispatchWindow.objects.filter(created_at__gte=since, created_at__lte=now).aggregate(
        n=Coalesce(Sum("duplicate_ticks"), 0)
    )
    return Metric(
        "suppressedDuplicates", "suppressed duplicate runs", runs["n"], "runs", detail={"duplicateTicks": ticks["n"]}
    )


def queue_metrics(*, since: datetime, now: datetime) -> list[Metric]:
    """Return backlog and lag now, the peak lag over the period, and how much the lag grew."""
    health = queue_health_measure(now=now, unresolved_dead_letters=dead_letters_unresolved())
    snapshots = QueueHealthSnapshot.objects.filter(taken_at__gte=since, taken_at__lte=now)
    summary = snapshots.aggregate(count=Count("pk"), peak=Max("lag_seconds"))
    first = snapshots.order_by("taken_at").first()
    threshold = settings.SLO_MAX_QUEUE_LAG_SECONDS
    growth: dict[str, Any] = {"snapshots": summary["count"]}
    if first is not None:
        growth |= {"fromTakenAt": iso_utc(first.taken_at), "fromLagSeconds": first.lag_seconds}
    return [
        Metric(
            "backlog",
            "backlog (due pending jobs)",
            health.ready,
            "jobs",
            detail={
                "pending": health.pending,
                "running": health.running,
                "growth": health.ready - first.ready if first is not None else None,
            },
        ),
        Metric(
            "queueLagSeconds",
            "queue lag now",
            health.lag_seconds,
            "s",
            threshold=threshold,
            setting="SLO_MAX_QUEUE_LAG_SECONDS",
        ),
        Metric(
            "peakQueueLagSeconds",
            "peak queue lag in the period",
            max(summary["peak"] or 0.0, health.lag_seconds),
            "s",
            threshold=threshold,
            setting="SLO_MAX_QUEUE_LAG_SECONDS",
            detail={"snapshots": summary["count"]},
        ),
        Metric(
            "queueLagGrowthSeconds",
            "queue lag growth over the period",
            round(health.lag_seconds - first.lag_seconds, 3) if first is not None else None,
            "s",
            detail=growth,
        ),
    ]


def dead_letters_metric(*, since: datetime, now: datetime) -> Metric:
    """Return the unresolved dead letters (all of them), and how many the period added."""
    unresolved = dead_letters_unresolved()
    created = DeadLetter.objects.filter(created_at__gte=since, created_at__lte=now).count()
    return Metric(
        "unresolvedDeadLetters", "unresolved dead letters", unresolved, "letters", detail={"createdInPeriod": created}
    )
