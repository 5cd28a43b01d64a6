"""The background-job queue in the admin: browse it, retry a pending job now, or cancel it."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from core.actions import ACTION_LIMIT
from core.admin import ReadOnlyAdmin
from core.admin_filters import DistinctValuesFilter, TenantFilter
from core.display import (
    EMPTY,
    age,
    ago,
    badge,
    change_url,
    clipped,
    duration,
    first_line,
    link,
    pretty_json,
    tenant_cell,
    when,
)
from jobs.models import BackgroundJob, QueueHealthSnapshot
from jobs.triage import job_cancel, job_retry_now

# The run ledger sits above the queue: its rows are linked by admin URL name and reached
# through their reverse relations (dead_letter, requeued_from), never by importing the model.
DEAD_LETTER = "runs.DeadLetter"


@admin.register(BackgroundJob)
class BackgroundJobAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "kind_clipped",
        "queue_clipped",
        "tenant_clipped",
        "status_badge",
        "attempts_of",
        "due",
        "created",
        "error_preview",
        "dead_letter_link",
    )
    list_filter = ("status", ("kind", DistinctValuesFilter), ("tenant", TenantFilter))
    search_fields = ("dedupe_key__exact", "tenant__exact")
    search_help_text = (
        "A job id, dedupe key or tenant; or the dispatch key, correlation id or run id of the drain that "
        "dead-lettered it. Exact."
    )
    date_hierarchy = "created_at"
    # Newest first (the id breaks ties: the list adds it, without marking the id column as sorted).
    ordering = ("-created_at",)
    sortable_by = ("id", "created")
    secondary_columns = ("queue_clipped", "attempts_of", "dead_letter_link")
    list_select_related = ("dead_letter",)
    actions = ("retry_now", "cancel")
    fields = (
        "id",
        "kind",
        "queue",
        "tenant_clipped",
        "status_badge",
        "attempts_of",
        "priority",
        "run_after",
        "created_at",
        "started_at",
        "finished_at",
        "run_duration",
        "lease_expires_at",
        "locked_by",
        "worker_ids",
        "dedupe_key",
        "last_error",
        "payload_json",
        "return_value_json",
        "errors_list",
        "dead_letter_link",
        "requeued_from_links",
    )
    readonly_fields = fields

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        """Match a term exactly: id, dedupe key, tenant, or the keys of the drain that dead-lettered the job.

        Each alternative is one index lookup; the dead letters' keys (through their
        reverse relation, `dead_letter`) are resolved to job ids first, so the OR
        stays on this table's indexes.
        """
        term = search_term.strip()
        if not term:
            return queryset, False
        match = Q(dedupe_key=term) | Q(tenant=term)
        if term.isdigit() and len(term) < 19:
            match |= Q(pk=int(term))
        buried = BackgroundJob.objects.filter(
            Q(dead_letter__dispatch_key=term) | Q(dead_letter__correlation_id=term) | Q(dead_letter__run_id=term)
        ).values_list("pk", flat=True)[:ACTION_LIMIT]
        job_ids = list(buried)
        if job_ids:
            match |= Q(pk__in=job_ids)
        return queryset.filter(match), False

    def has_operate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("jobs.operate_backgroundjob")

    @admin.action(description="Retry selected pending jobs now", permissions=["operate"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet[BackgroundJob]) -> None:
        ids = self.selected_ids(request, queryset)
        if ids is not None:
            report = job_retry_now(job_ids=ids, now=timezone.now())
            self.report(request, report, verb="Made", then="due now", change_message="Retry now (admin action).")

    @admin.action(description="Cancel selected pending jobs", permissions=["operate"])
    def cancel(self, request: HttpRequest, queryset: QuerySet[BackgroundJob]) -> None:
        ids = self.selected_ids(request, queryset)
        if ids is not None:
            report = job_cancel(job_ids=ids, by=request.user.get_username(), now=timezone.now())
            self.report(request, report, verb="Cancelled", change_message="Cancelled (admin action).")

    @admin.display(description="status", ordering="status")
    def status_badge(self, job: BackgroundJob) -> SafeString:
        return badge(job.status)

    @admin.display(description="attempts")
    def attempts_of(self, job: BackgroundJob) -> str:
        return f"{job.attempts}/{job.max_attempts}"

    @admin.display(description="due")
    def due(self, job: BackgroundJob) -> SafeString | str:
        if job.status != BackgroundJob.Status.PENDING:
            return EMPTY
        now = timezone.now()
        if job.run_after > now:
            return format_html('<span title="{}">in {}</span>', when(job.run_after), age(now, now=job.run_after))
        return format_html('<span title="due since {}">now</span>', when(job.run_after))

    @admin.display(description="created", ordering="created_at")
    def created(self, job: BackgroundJob) -> SafeString | str:
        return ago(job.created_at)

    @admin.display(description="duration")
    def run_duration(self, job: BackgroundJob) -> str:
        if job.started_at is None or job.finished_at is None:
            return EMPTY
        return duration((job.finished_at - job.started_at).total_seconds() * 1000)

    @admin.display(description="kind")
    def kind_clipped(self, job: BackgroundJob) -> SafeString | str:
        return clipped(job.kind)

    @admin.display(description="queue")
    def queue_clipped(self, job: BackgroundJob) -> SafeString | str:
        return clipped(job.queue, "narrow")

    @admin.display(description="tenant")
    def tenant_clipped(self, job: BackgroundJob) -> SafeString | str:
        return tenant_cell(job.tenant)

    @admin.display(description="last error")
    def error_preview(self, job: BackgroundJob) -> SafeString | str:
        return clipped(first_line(job.last_error), "wide")

    @admin.display(description="dead letter")
    def dead_letter_link(self, job: BackgroundJob) -> SafeString | str:
        letter = getattr(job, "dead_letter", None)
        if letter is None:
            return EMPTY
        return link(change_url(DEAD_LETTER, letter.pk), f"#{letter.pk} ({letter.resolution or 'unresolved'})")

    @admin.display(description="requeued from")
    def requeued_from_links(self, job: BackgroundJob) -> SafeString | str:
        letters = list(job.requeued_from.values_list("pk", flat=True))
        if not letters:
            return EMPTY
        return format_html_join(
            ", ", '<a href="{}">dead letter #{}</a>', ((change_url(DEAD_LETTER, pk), pk) for pk in letters)
        )

    @admin.display(description="payload")
    def payload_json(self, job: BackgroundJob) -> SafeString:
        return pretty_json(job.payload)

    @admin.display(description="return value")
    def return_value_json(self, job: BackgroundJob) -> SafeString | str:
        return pretty_json(job.return_value) if job.status == BackgroundJob.Status.SUCCEEDED else EMPTY

    @admin.display(description="errors (each failed attempt)")
    def errors_list(self, job: BackgroundJob) -> SafeString | str:
        if not job.errors:
            return EMPTY
        return format_html_join(
            "",
            '<details><summary>attempt {}: {}</summary><pre class="orch-json">{}</pre></details>',
            ((e.get("attempt", "?"), e["exception_class_path"], e["traceback"]) for e in reversed(job.errors)),
        )


@admin.register(QueueHealthSnapshot)
class QueueHealthSnapshotAdmin(ReadOnlyAdmin):
    list_display = ("taken_at", "ready", "pending", "running", "dead", "lag_seconds", "unresolved_dead_letters")
    date_hierarchy = "taken_at"
    ordering = ("-taken_at",)
