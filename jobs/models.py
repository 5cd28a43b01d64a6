"""The background-job queue's one table."""

from __future__ import annotations

from django.db import models
from django.db.models import Q, Value
from django.utils import timezone

from core.display import when


class JobStatus(models.TextChoices):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    DEAD = "dead"
    CANCELLED = "cancelled"


DEFAULT_QUEUE = "default"  # django-tasks' DEFAULT_TASK_QUEUE_NAME
# Every attempt's failure is kept (exception class and traceback) up to this many, newest last.
MAX_ERRORS_KEPT = 10


class BackgroundJob(models.Model):
    Status = JobStatus

    tenant = models.CharField(max_length=64, blank=True, default="", help_text="Empty for global jobs.")
    kind = models.CharField(max_length=100)
    payload = models.JSONField(default=dict, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    priority = models.SmallIntegerField(default=0, help_text="Higher runs first.")
    attempts = models.PositiveSmallIntegerField(default=0)
    max_attempts = models.PositiveSmallIntegerField(default=5)
    run_after = models.DateTimeField(default=timezone.now)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    locked_by = models.CharField(max_length=128, blank=True, default="")
    last_error = models.TextField(blank=True, default="")
    # NULL, not "", means "no key": the partial unique constraint ignores NULLs.
    dedupe_key = models.CharField(max_length=200, null=True, blank=True)  # noqa: DJ001
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # The Tasks framework's fields (docs/tasks.md). The database defaults let rows be
    # inserted by plain SQL (the benchmarks seed them so) as well as by the ORM.
    queue = models.CharField(max_length=64, default=DEFAULT_QUEUE, db_default=DEFAULT_QUEUE)
    return_value = models.JSONField(null=True, blank=True, help_text="What the task returned (JSON), once succeeded.")
    errors = models.JSONField(
        default=list,
        db_default=Value([], output_field=models.JSONField()),
        blank=True,
        help_text=f"The last {MAX_ERRORS_KEPT} failed attempts: exception class path and traceback.",
    )
    worker_ids = models.JSONField(
        default=list,
        db_default=Value([], output_field=models.JSONField()),
        blank=True,
        help_text="The worker of each attempt, in order.",
    )
    # The id of a task's TaskResult: random, so that knowing one result's id tells nothing of another's. Jobs
    # written before it existed, and jobs of @job_handler functions, have none (their result id is the job id).
    result_id = models.UUIDField(null=True, blank=True, editable=False, help_text="The task result's id.")

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=[s.value for s in JobStatus]),
                name="%(app_label)s_%(class)s_status_valid",
            ),
            models.CheckConstraint(
                condition=Q(max_attempts__gte=1) & Q(max_attempts__lte=100),
                name="%(app_label)s_%(class)s_max_attempts_range",
            ),
            models.CheckConstraint(
                condition=~Q(status="running") | Q(lease_expires_at__isnull=False),
                name="%(app_label)s_%(class)s_running_has_lease",
            ),
            # One live job per (tenant, dedupe key): a finished job frees its key.
            models.UniqueConstraint(
                fields=["tenant", "dedupe_key"],
                condition=Q(status__in=["pending", "running"]) & Q(dedupe_key__isnull=False),
                name="%(app_label)s_%(class)s_live_dedupe_key",
            ),
            # A task's result is looked up by its id (get_result, refresh): one job each.
            models.UniqueConstraint(
                fields=["result_id"],
                condition=Q(result_id__isnull=False),
                name="%(app_label)s_%(class)s_result_id",
            ),
        ]
        indexes = [
            # The claim: pending, due, highest priority first, oldest first.
            models.Index(
                fields=["-priority", "run_after", "id"],
                condition=Q(status="pending"),
                name="jobs_claim_idx",
            ),
            # What is due, however many jobs wait for later: the claim when fewer jobs are due than it asks
            # for, the due count and the earliest run_after read only the due entries here. The claim index
            # leads with priority, so a range on run_after cannot stop its scan: it reads every pending job.
            models.Index(fields=["run_after"], condition=Q(status="pending"), name="jobs_due_idx"),
            # The claim of a worker that drains some queues only (run_jobs --queue).
            models.Index(
                fields=["queue", "-priority", "run_after", "id"],
                condition=Q(status="pending"),
                name="jobs_queue_claim_idx",
            ),
            # Lease recovery (running jobs whose lease has expired) and shutdown (a worker's unstarted
            # claims) look at the few running jobs. Not keyed on lease_expires_at: a job's start and
            # its heartbeats change only columns no index holds, so PostgreSQL can write them as
            # heap-only (HOT) updates, without a new entry in every index of the table.
            models.Index(fields=["id"], condition=Q(status="running"), name="jobs_running_idx"),
            # Pruning of finished jobs, and the admin's status filter + ordering.
            models.Index(fields=["status", "finished_at"], name="jobs_status_finished_idx"),
            models.Index(fields=["status", "-created_at"], name="jobs_status_created_idx"),
            models.Index(fields=["-created_at"], name="jobs_created_idx"),
            models.Index(fields=["kind", "-created_at"], name="jobs_kind_created_idx"),
            models.Index(fields=["tenant", "-created_at"], name="jobs_tenant_created_idx"),
            # The admin's search by dedupe key, whatever the job's status.
            models.Index(fields=["dedupe_key"], condition=Q(dedupe_key__isnull=False), name="jobs_dedupe_key_idx"),
        ]
        permissions = [("operate_backgroundjob", "Can retry and cancel pending background jobs")]

    def __str__(self) -> str:
        return f"{self.kind} #{self.pk} ({self.status})"

    @property
    def scope(self) -> str:
        """Return the status-blob scope: the tenant, or `global`."""
        return self.tenant or "global"


class QueueHealthSnapshot(models.Model):
    """The queue's health as one maintenance run measured it: the history behind lag growth and backlog charts."""

    taken_at = models.DateTimeField()
    pending = models.PositiveIntegerField(help_text="Pending jobs, due or scheduled.")
    ready = models.PositiveIntegerField(help_text="Pending jobs that are due: the backlog.")
    running = models.PositiveIntegerField()
    dead = models.PositiveIntegerField()
    lag_seconds = models.FloatField(help_text="Age of the oldest due pending job.")
    unresolved_dead_letters = models.PositiveIntegerField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(lag_seconds__gte=0), name="%(app_label)s_%(class)s_lag_not_negative"),
        ]
        indexes = [models.Index(fields=["taken_at"], name="jobs_health_taken_idx")]
        get_latest_by = "taken_at"

    def __str__(self) -> str:
        return f"queue health at {when(self.taken_at)}: {self.ready} ready, lag {self.lag_seconds:g} s"
