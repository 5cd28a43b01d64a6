"""The run ledger: Inngest function runs, their attempts, and dead letters."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class RunStatus(models.TextChoices):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class FunctionRun(models.Model):
    """One durable run of an Inngest function for one dispatch window."""

    Status = RunStatus

    function_id = models.CharField(max_length=100)
    dispatch_key = models.CharField(max_length=200)
    window_start = models.DateTimeField(
        null=True,
        blank=True,
        help_text="The start of the window its dispatch key names (for a key that names none, when the run started).",
    )
    run_id = models.CharField(max_length=100)
    correlation_id = models.CharField(max_length=64, blank=True, default="")
    source = models.CharField(max_length=16, blank=True, default="")
    scope = models.CharField(max_length=64, default="global")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    attempts = models.PositiveSmallIntegerField(
        default=1, help_text="How many attempts the run made: its attempt rows, every attempt of every step."
    )
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True, default="")
    terminal_reason = models.CharField(max_length=500, blank=True, default="")
    output = models.JSONField(null=True, blank=True)
    duplicates_suppressed = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["function_id", "dispatch_key"],
                name="%(app_label)s_%(class)s_one_per_window",
            ),
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in RunStatus]),
                name="%(app_label)s_%(class)s_status_valid",
            ),
            models.CheckConstraint(
                condition=~Q(status="failed") | ~Q(terminal_reason=""),
                name="%(app_label)s_%(class)s_failed_has_reason",
            ),
        ]
        indexes = [
            models.Index(fields=["-started_at"], name="runs_run_started_idx"),
            models.Index(fields=["status", "-started_at"], name="runs_run_status_started_idx"),
            models.Index(fields=["dispatch_key"], name="runs_run_dispatch_key_idx"),
            models.Index(fields=["run_id"], name="runs_run_run_id_idx"),
            models.Index(fields=["correlation_id"], name="runs_run_correlation_idx"),
            # The admin's list in its order (newest window first), alone and after each of its filters and sorts:
            # status, function, tenant (scope), source.
            models.Index(fields=["-window_start", "-id"], name="runs_run_window_idx"),
            models.Index(fields=["status", "-window_start"], name="runs_run_status_window_idx"),
            models.Index(fields=["function_id", "-window_start"], name="runs_run_function_window_idx"),
            models.Index(fields=["scope", "-window_start"], name="runs_run_scope_window_idx"),
            models.Index(fields=["source", "-window_start"], name="runs_run_source_window_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.function_id} {self.dispatch_key} ({self.status})"


class AttemptStatus(models.TextChoices):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class FunctionRunAttempt(models.Model):
    """One attempt of one step of a run, numbered as Inngest numbers them (ctx.attempt + 1, from 1 in each step)."""

    Status = AttemptStatus

    run = models.ForeignKey(FunctionRun, on_delete=models.CASCADE, related_name="attempt_rows")
    attempt = models.PositiveSmallIntegerField()
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    step = models.CharField(max_length=100, blank=True, default="")
    started_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True, default="")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["run", "step", "attempt"], name="%(app_label)s_%(class)s_one_per_step_attempt"
            ),
            models.CheckConstraint(condition=Q(attempt__gte=1), name="%(app_label)s_%(class)s_attempt_positive"),
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in RunStatus]),
                name="%(app_label)s_%(class)s_status_valid",
            ),
        ]
        ordering = ["run", "id"]  # in the order they were made

    def __str__(self) -> str:
        step = f" of step {self.step}" if self.step else ""
        return f"attempt {self.attempt}{step} of run {self.run_id} ({self.status})"


class DeadLetterSource(models.TextChoices):
    FUNCTION_RUN = "function_run", "Function run"
    JOB = "job", "Background job"


class Resolution(models.TextChoices):
    REQUEUED = "requeued"
    RESOLVED = "resolved"


# resolved_at DESC puts NULL (unresolved) first on PostgreSQL; the admin spells NULLS FIRST out.
TRIAGE_ORDER = ("-resolved_at", "-created_at", "-id")


class DeadLetter(models.Model):
    """A terminal failure, kept until an operator requeues or resolves it."""

    Source = DeadLetterSource
    Resolution = Resolution

    source = models.CharField(max_length=16, choices=Source.choices)
    function_run = models.OneToOneField(
        FunctionRun, null=True, blank=True, on_delete=models.PROTECT, related_name="dead_letter"
    )
    job = models.OneToOneField(
        "jobs.BackgroundJob", null=True, blank=True, on_delete=models.PROTECT, related_name="dead_letter"
    )
    kind = models.CharField(max_length=100, help_text="Function id or job kind.")
    scope = models.CharField(max_length=64, default="global")
    dispatch_key = models.CharField(max_length=200, blank=True, default="")
    correlation_id = models.CharField(max_length=64, blank=True, default="")
    run_id = models.CharField(max_length=100, blank=True, default="")
    error = models.TextField(blank=True, default="")
    fingerprint = models.CharField(
        "cause",
        max_length=200,
        blank=True,
        default="",
        db_default="",
        help_text="The error's type and message with ids, numbers, hex and times masked: letters of one cause "
        "share it (core.errors.error_fingerprint), written with the letter.",
    )
    payload = models.JSONField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    resolution = models.CharField(max_length=16, choices=Resolution.choices, blank=True, default="")
    note = models.TextField(blank=True, default="")
    requeued_job = models.ForeignKey(
        "jobs.BackgroundJob", null=True, blank=True, on_delete=models.SET_NULL, related_name="requeued_from"
    )
    requeued_dispatch_key = models.CharField(max_length=200, blank=True, default="")

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=(Q(source="function_run") & Q(function_run__isnull=False) & Q(job__isnull=True))
                | (Q(source="job") & Q(job__isnull=False) & Q(function_run__isnull=True)),
                name="%(app_label)s_%(class)s_source_matches_origin",
            ),
            models.CheckConstraint(
                condition=(Q(resolved_at__isnull=True) & Q(resolution=""))
                | (Q(resolved_at__isnull=False) & Q(resolution__in=["requeued", "resolved"])),
                name="%(app_label)s_%(class)s_resolution_consistent",
            ),
        ]
        indexes = [
            # The unresolved count (queue health, the SLO report).
            models.Index(fields=["-created_at"], condition=Q(resolved_at__isnull=True), name="runs_dl_unresolved_idx"),
            models.Index(fields=["-created_at"], name="runs_dl_created_idx"),
            # The admin's triage order (unresolved first, newest first; then the latest resolutions),
            # alone and after each of its filters: state, source, kind, tenant.
            models.Index(fields=[*TRIAGE_ORDER], name="runs_dl_triage_idx"),
            models.Index(fields=["resolution", *TRIAGE_ORDER], name="runs_dl_state_triage_idx"),
            models.Index(fields=["source", *TRIAGE_ORDER], name="runs_dl_source_triage_idx"),
            models.Index(fields=["kind", *TRIAGE_ORDER], name="runs_dl_kind_triage_idx"),
            models.Index(fields=["scope", *TRIAGE_ORDER], name="runs_dl_scope_triage_idx"),
            # Grouping by cause (count, first and last seen) with the state filter or without it: an
            # index-only scan, never a read of every letter; and one cause's letters in triage order.
            models.Index(fields=["resolution", "fingerprint", "created_at", "kind"], name="runs_dl_state_cause_idx"),
            models.Index(fields=["fingerprint", *TRIAGE_ORDER], name="runs_dl_cause_triage_idx"),
            models.Index(fields=["dispatch_key"], name="runs_dl_dispatch_key_idx"),
            models.Index(fields=["run_id"], name="runs_dl_run_id_idx"),
            models.Index(fields=["correlation_id"], name="runs_dl_correlation_idx"),
        ]
        permissions = [("triage_deadletter", "Can requeue and resolve dead letters")]

    def __str__(self) -> str:
        state = self.resolution or "unresolved"
        return f"{self.kind} dead letter #{self.pk} ({state})"
