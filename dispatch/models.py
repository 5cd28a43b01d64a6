"""Dispatch windows: one row per cron job per window, the guard against double runs."""

from __future__ import annotations

from django.db import models
from django.db.models import Q
from django.utils import timezone


class WindowStatus(models.TextChoices):
    PENDING = "pending"
    ENQUEUED = "enqueued"
    DISPATCH_FAILED = "dispatch_failed"
    INLINE = "inline"


class WindowMode(models.TextChoices):
    DISPATCH = "dispatch"
    INLINE = "inline"
    INLINE_FORCED = "inline-forced"
    INLINE_FALLBACK = "inline-fallback"
    DISPATCH_FAILED = "dispatch-failed"


class WindowSource(models.TextChoices):
    CRON = "cron"
    MANUAL = "manual"
    EMERGENCY = "emergency"


class DispatchWindow(models.Model):
    Status = WindowStatus
    Mode = WindowMode
    Source = WindowSource

    dispatch_key = models.CharField(max_length=200)
    job = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    mode = models.CharField(max_length=16, choices=Mode.choices)
    source = models.CharField(max_length=16, choices=Source.choices)
    correlation_id = models.CharField(max_length=64)
    window_start = models.DateTimeField()
    window_seconds = models.PositiveIntegerField()
    requested_at = models.DateTimeField()
    event_ids = models.JSONField(default=list, blank=True)
    publish_attempts = models.PositiveIntegerField(default=0)
    duplicate_ticks = models.PositiveIntegerField(default=0)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    error = models.TextField(blank=True, default="")
    claim = models.PositiveIntegerField(
        default=1,
        help_text="The fence: bumped by every (re-)claim. A tick writes the window only while its claim is the latest.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    # The database's clock on PostgreSQL (dispatch.windows): a pending window is stale by it.
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["dispatch_key"], name="%(app_label)s_%(class)s_one_per_key"),
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in WindowStatus]),
                name="%(app_label)s_%(class)s_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(mode__in=[m.value for m in WindowMode]),
                name="%(app_label)s_%(class)s_mode_valid",
            ),
            models.CheckConstraint(
                condition=Q(source__in=[s.value for s in WindowSource]),
                name="%(app_label)s_%(class)s_source_valid",
            ),
            models.CheckConstraint(
                condition=Q(window_seconds__gte=60), name="%(app_label)s_%(class)s_window_at_least_a_minute"
            ),
        ]
        indexes = [
            models.Index(fields=["-created_at"], name="dispatch_win_created_idx"),
            models.Index(fields=["job", "-window_start"], name="dispatch_win_job_start_idx"),
            models.Index(fields=["status", "-created_at"], name="dispatch_win_status_idx"),
            models.Index(fields=["mode", "-created_at"], name="dispatch_win_mode_idx"),
            models.Index(fields=["correlation_id"], name="dispatch_win_correlation_idx"),
            # The admin's job and source filters (and the dashboard's last windows per job), newest first.
            models.Index(fields=["job", "-created_at"], name="dispatch_win_job_created_idx"),
            models.Index(fields=["source", "-created_at"], name="dispatch_win_source_idx"),
            # The SLO report's latency percentiles: an index-only scan of the period's dispatches.
            models.Index(
                fields=["created_at", "latency_ms"],
                condition=Q(mode__in=[WindowMode.DISPATCH.value, WindowMode.DISPATCH_FAILED.value]),
                name="dispatch_win_latency_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.dispatch_key} ({self.status})"
