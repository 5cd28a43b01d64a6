"""Dispatch windows: one row per cron job per window, the guard against double runs; and each cron job's state."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Case, F, Q, Value, When
from django.utils import timezone

from dispatch.keys import is_manual


class WindowStatus(models.TextChoices):
    """A window's outcome."""

    PENDING = "pending"
    ENQUEUED = "enqueued"
    DISPATCH_FAILED = "dispatch_failed"
    INLINE = "inline"
    # No tick came for the window (the reconciler records it): nothing ran.
    MISSED = "missed"
    # The job was paused when its tick came (or while no tick came): nothing ran, by intent.
    PAUSED = "paused"
    # An inline window whose tick died after its claim; its error says what the run ledger knows.
    ABANDONED = "abandoned"


class WindowMode(models.TextChoices):
    """How a tick handled its window. A missed window had no tick, so it has no mode ("")."""

    DISPATCH = "dispatch"
    INLINE = "inline"
    INLINE_FORCED = "inline-forced"
    INLINE_FALLBACK = "inline-fallback"
    # A tick's answer only: a window whose publish failed keeps mode `dispatch` (its status says the outcome).
    DISPATCH_FAILED = "dispatch-failed"
    PAUSED = "paused"


# How an inline window's error tells that its run crashed (dispatch.services): its outcome is then a failure.
INLINE_CRASHED = "inline run crashed: "
INLINE_CRASHED_OUTCOME = "inline_crashed"

# The modes a window row records (the admin's mode filter offers these).
STORED_MODES = tuple(mode for mode in WindowMode if mode != WindowMode.DISPATCH_FAILED)


class WindowSource(models.TextChoices):
    CRON = "cron"
    MANUAL = "manual"
    EMERGENCY = "emergency"
    RECONCILER = "reconciler"


class DispatchWindow(models.Model):
    Status = WindowStatus
    Mode = WindowMode
    Source = WindowSource

    dispatch_key = models.CharField(max_length=200)
    job = models.CharField(max_length=64)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    mode = models.CharField(max_length=16, choices=Mode.choices, blank=True)
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
    # `source` is the first claim's; a re-claim (a tick after a failed publish, the reconciler re-publishing an
    # orphan, an operator running a missed window) is recorded here, so the first claim's stays true.
    # A database default as well: rows inserted by raw SQL, or by a process of the previous release, get it.
    reclaimed_by = models.CharField(max_length=16, choices=Source.choices, blank=True, db_default="")
    lateness_ms = models.BigIntegerField(
        null=True,
        blank=True,
        help_text="How late the cron service's tick that claimed the window came: its arrival minus the window's "
        "start (negative: early, within the tolerance). Empty when no cron tick claimed it.",
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
                condition=Q(mode__in=[m.value for m in WindowMode]) | Q(mode="", status=WindowStatus.MISSED),
                name="%(app_label)s_%(class)s_mode_valid",
            ),
            # A paused window is paused in both: its tick did nothing, whatever the mode would have been.
            models.CheckConstraint(
                condition=Q(status=WindowStatus.PAUSED, mode=WindowMode.PAUSED)
                | (~Q(status=WindowStatus.PAUSED) & ~Q(mode=WindowMode.PAUSED)),
                name="%(app_label)s_%(class)s_paused_in_both",
            ),
            models.CheckConstraint(
                condition=Q(source__in=[s.value for s in WindowSource]),
                name="%(app_label)s_%(class)s_source_valid",
            ),
            models.CheckConstraint(
                condition=Q(reclaimed_by__in=["", *(s.value for s in WindowSource)]),
                name="%(app_label)s_%(class)s_reclaimed_by_valid",
            ),
            models.CheckConstraint(
                condition=Q(window_seconds__gte=60), name="%(app_label)s_%(class)s_window_at_least_a_minute"
            ),
        ]
        indexes = [
            models.Index(fields=["-created_at"], name="dispatch_win_created_idx"),
            models.Index(fields=["status", "-created_at"], name="dispatch_win_status_idx"),
            models.Index(fields=["correlation_id"], name="dispatch_win_correlation_idx"),
            # The admin's list in its order (newest window first), alone and after each of its filters and sorts:
            # outcome, mode, job (also the health panel's last windows per job), source.
            models.Index(fields=["-window_start", "-id"], name="dispatch_win_window_idx"),
            models.Index(fields=["status", "-window_start"], name="dispatch_win_status_window_idx"),
            models.Index(fields=["mode", "-window_start"], name="dispatch_win_mode_window_idx"),
            models.Index(fields=["job", "-window_start"], name="dispatch_win_job_start_idx"),
            models.Index(fields=["source", "-window_start"], name="dispatch_win_source_window_idx"),
            # The SLO report's latency percentiles: an index-only scan of the period's dispatches.
            models.Index(
                fields=["created_at", "latency_ms"],
                condition=Q(mode__in=[WindowMode.DISPATCH.value, WindowMode.DISPATCH_FAILED.value]),
                name="dispatch_win_latency_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.dispatch_key} ({'inline crashed' if self.outcome == INLINE_CRASHED_OUTCOME else self.status})"

    @property
    def manual(self) -> bool:
        """Return whether the window is a one-off manual run of its window (a `:manual-` key)."""
        return is_manual(self.dispatch_key)

    @property
    def outcome(self) -> str:
        """Return how the window ended: its status, or `inline_crashed` for an inline window whose run crashed."""
        if self.status == WindowStatus.INLINE and INLINE_CRASHED in self.error:
            return INLINE_CRASHED_OUTCOME
        return self.status


class CronJobState(models.Model):
    """What the schedule knows of one registered cron job: paused or not, and how far it is reconciled.

    One row per job, created on demand. Every change is a conditional update; the
    watermark only moves forward.
    """

    job = models.CharField(max_length=64)
    paused = models.BooleanField(default=False)
    paused_at = models.DateTimeField(null=True, blank=True)
    paused_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    pause_note = models.TextField(blank=True, default="")
    resumed_at = models.DateTimeField(null=True, blank=True)
    resumed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    reconciled_through = models.DateTimeField(
        null=True, blank=True, help_text="The start of the last window the reconciler has accounted for."
    )
    first_cron_window = models.DateTimeField(
        null=True, blank=True, help_text="The start of the job's first cron-sourced window: nothing before it is due."
    )
    # The registry as the reconciler last saw it (dispatch.registration): windows before the job was (re-)registered
    # or its schedule changed are not due.
    schedule = models.CharField(
        max_length=200, blank=True, db_default="", help_text="The job's schedule when the reconciler last saw it."
    )
    schedule_since = models.DateTimeField(
        null=True, blank=True, help_text="Since when the job is registered with this schedule: nothing before is due."
    )
    unregistered_at = models.DateTimeField(
        null=True, blank=True, help_text="When the reconciler found the job gone from the registry (while it is)."
    )
    # The outage (windows no tick came for) still going on at the watermark, and its catch-ups so far: the
    # catch-up policy counts per outage (runs.reconcile).
    outage_from = models.DateTimeField(
        null=True, blank=True, help_text="The first window of the outage still going on at the watermark."
    )
    outage_caught_up = models.PositiveIntegerField(db_default=0)
    drift_ticks = models.PositiveBigIntegerField(
        db_default=0, help_text="Cron ticks that came further than the tolerance from any window start."
    )
    last_drift_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name = "cron job"
        verbose_name_plural = "cron jobs"
        constraints = [
            models.UniqueConstraint(fields=["job"], name="%(app_label)s_%(class)s_one_per_job"),
            models.CheckConstraint(
                condition=Q(paused=False) | Q(paused_at__isnull=False),
                name="%(app_label)s_%(class)s_paused_has_time",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.job} ({'paused' if self.paused else 'active'})"


# A window's outcome in a query, as DispatchWindow.outcome says it (the health panel's chart counts them).
WINDOW_OUTCOME = Case(
    When(status=WindowStatus.INLINE, error__contains=INLINE_CRASHED, then=Value(INLINE_CRASHED_OUTCOME)),
    default=F("status"),
    output_field=models.CharField(),
)
