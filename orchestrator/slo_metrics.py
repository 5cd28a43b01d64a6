"""The SLO report's figures (orchestrator.slo): each a Metric, from SQL aggregates over [since, now]."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.db.models import Count, Max, Q, Sum
from django.db.models.functions import Coalesce

from core.aggregates import percentiles
from core.timefmt import iso_utc
from dispatch.models import DispatchWindow
from dispatch.windows import stale_pending
from jobs.health import queue_health_measure
from jobs.models import QueueHealthSnapshot
from runs.models import DeadLetter, FunctionRun
from runs.services import dead_letters_unresolved

DISPATCH_MODES = (DispatchWindow.Mode.DISPATCH, DispatchWindow.Mode.DISPATCH_FAILED)
# `dispatch_tick --force` runs a window again under `<window key>:manual-<8 hex>`.
MANUAL_SUFFIX_RE = r":manual-[0-9a-f]{8}$"
MANUAL_SUFFIX_LENGTH = len(":manual-") + 8
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


def duplicate_runs_metric(*, since: datetime, now: datetime) -> Metric:
    """Return Σ (runs − 1) over each (function, window) that more than one run did work for.

    A run's window is its dispatch key without a `:manual-<8 hex>` suffix, so a
    forced re-run of a window counts as the duplicate it is. A failed run is not
    counted: re-running a window whose run failed (a requeued dead letter) is a
    retry, not a duplicate. The unique constraint gives every (function, window)
    one run at most besides its manual ones, so only windows with a manual run
    can hold a duplicate: those few are counted, not every run of the period.
    """
    runs = FunctionRun.objects.filter(started_at__gte=since, started_at__lte=now).exclude(
        status=FunctionRun.Status.FAILED
    )
    manual = Counter(
        (function_id, key[:-MANUAL_SUFFIX_LENGTH])
        for function_id, key in runs.filter(dispatch_key__contains=":manual-").values_list(
            "function_id", "dispatch_key"
        )
        if re.search(MANUAL_SUFFIX_RE, key)
    )
    windowed = set(
        runs.filter(
            function_id__in={function_id for function_id, _ in manual},
            dispatch_key__in={window for _, window in manual},
        ).values_list("function_id", "dispatch_key")
    )
    runs_per_window = [count + ((function_id, window) in windowed) for (function_id, window), count in manual.items()]
    duplicated = [count for count in runs_per_window if count > 1]
    return Metric(
        "duplicateRuns",
        "duplicate runs per window",
        sum(count - 1 for count in duplicated),
        "runs",
        threshold=settings.SLO_MAX_DUPLICATE_RUNS,
        setting="SLO_MAX_DUPLICATE_RUNS",
        detail={"windowsWithDuplicates": len(duplicated)},
    )


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
