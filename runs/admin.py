"""The run ledger and the dead-letter triage queue in the admin (docs/admin.md)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.admin import helpers
from django.db.models import F, QuerySet
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString

from core.admin import ReadOnlyAdmin, acting_user
from core.admin_filters import DistinctValuesFilter, TenantFilter
from core.display import (
    EMPTY,
    ago,
    badge,
    change_url,
    changelist_url,
    clipped,
    duration,
    first_line,
    link,
    pretty_json,
    tenant_cell,
)
from dispatch.admin import window_cell
from dispatch.keys import any_key_window_start
from dispatch.models import DispatchWindow
from jobs.models import BackgroundJob
from runs.models import DeadLetter, FunctionRun, FunctionRunAttempt
from runs.triage import dead_letter_requeue, dead_letter_resolve
from runs.triage_admin import CauseFilter, LetterStateFilter, ResolveForm, TriagePages


class AttemptInline(admin.TabularInline[FunctionRunAttempt, FunctionRun]):
    model = FunctionRunAttempt
    fields = ("step", "attempt", "status_badge", "started_at", "finished_at", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="status")
    def status_badge(self, attempt: FunctionRunAttempt) -> SafeString:
        return badge(attempt.status)


@admin.register(FunctionRun)
class FunctionRunAdmin(ReadOnlyAdmin):
    list_display = (
        "function",
        "window",
        "status_badge",
        "attempts",
        "run_duration",
        "source",
        "tenant",
        "started",
        "dead_letter_link",
    )
    list_filter = (
        "status",
        ("function_id", DistinctValuesFilter),
        ("scope", TenantFilter),
        ("source", DistinctValuesFilter),
    )
    search_fields = ("dispatch_key__exact", "correlation_id__exact", "run_id__exact")
    search_help_text = "An exact dispatch key, correlation id or run id."
    # In window order, newest first, as the dispatch windows: a window's runs sit together.
    date_hierarchy = "window_start"
    ordering = ("-window_start", "-id")
    sortable_by = ("function", "window", "started")
    secondary_columns = ("attempts", "run_duration", "source", "started")
    list_select_related = ("dead_letter",)
    inlines = (AttemptInline,)
    fields = (
        "function_id",
        "status_badge",
        "window_link",
        "window_start",
        "dead_letter_link",
        "run_id",
        "correlation_id",
        "source",
        "tenant",
        "attempts",
        "started_at",
        "finished_at",
        "run_duration",
        "terminal_reason",
        "last_error",
        "duplicates_suppressed",
        "output_json",
    )
    readonly_fields = fields

    @admin.display(description="function", ordering="function_id")
    def function(self, run: FunctionRun) -> SafeString | str:
        # The list's key column: the built-in functions' names (23 characters) whole from 1024 px.
        return clipped(run.function_id, "wide")

    @admin.display(description="window", ordering="window_start")
    def window(self, run: FunctionRun) -> SafeString | str:
        # A refused payload's key (`invalid:<run id>`) names no window: the key itself, filed when it ran.
        if any_key_window_start(run.dispatch_key) is None:
            return clipped(run.dispatch_key, "narrow")
        return window_cell(run.dispatch_key, run.window_start)

    @admin.display(description="tenant")
    def tenant(self, run: FunctionRun) -> SafeString | str:
        return tenant_cell(run.scope)

    @admin.display(description="status", ordering="status")
    def status_badge(self, run: FunctionRun) -> SafeString:
        return badge(run.status)

    @admin.display(description="duration")
    def run_duration(self, run: FunctionRun) -> str:
        return duration(run.duration_ms)

    @admin.display(description="started", ordering="started_at")
    def started(self, run: FunctionRun) -> SafeString | str:
        return ago(run.started_at)

    @admin.display(description="dead letter")
    def dead_letter_link(self, run: FunctionRun) -> SafeString | str:
        letter = getattr(run, "dead_letter", None)
        return (
            link(change_url(DeadLetter, letter.pk), f"#{letter.pk} ({letter.resolution or 'unresolved'})")
            if letter
            else EMPTY
        )

    @admin.display(description="dispatch window")
    def window_link(self, run: FunctionRun) -> SafeString:
        return link(changelist_url(DispatchWindow, dispatch_key=run.dispatch_key), run.dispatch_key)

    @admin.display(description="output")
    def output_json(self, run: FunctionRun) -> SafeString:
        return pretty_json(run.output)


@admin.register(DeadLetter)
class DeadLetterAdmin(TriagePages):
    list_display = (
        "letter",
        "kind_clipped",
        "origin",
        "state_badge",
        "tenant",
        "attempts",
        "error_preview",
        "created",
        "origin_link",
        "requeued_link",
    )
    list_filter = (
        LetterStateFilter,
        "source",
        ("kind", DistinctValuesFilter),
        ("scope", TenantFilter),
        CauseFilter,
    )
    search_fields = ("dispatch_key__exact", "correlation_id__exact", "run_id__exact")
    search_help_text = "An exact dispatch key, correlation id or run id."
    date_hierarchy = "created_at"
    # Unresolved first (newest first), then the latest resolutions: the triage queue.
    ordering = (F("resolved_at").desc(nulls_first=True), "-created_at", "-id")
    sortable_by = ("created",)
    secondary_columns = ("origin", "tenant", "attempts", "requeued_link")
    actions = ("requeue", "resolve")
    change_list_template = "admin/runs/deadletter/change_list.html"
    change_form_template = "admin/runs/deadletter/change_form.html"
    fields = (
        "letter",
        "state_badge",
        "kind",
        "source",
        "origin_link",
        "window_link",
        "tenant",
        "dispatch_key",
        "correlation_id",
        "run_id",
        "attempts",
        "created_at",
        "cause",
        "error",
        "payload_json",
    )
    readonly_fields = (*fields, "requeued_at", "requeued_by", "requeued_link", "resolved_at", "resolved_by", "note")

    @admin.action(description="Requeue selected dead letters", permissions=["triage"])
    def requeue(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> None:
        ids = self.selected_ids(request, queryset)
        if ids is None:
            return
        report = dead_letter_requeue(letter_ids=ids, user=acting_user(request), now=timezone.now())
        self.report(request, report, verb="Requeued", change_message="Requeued (admin action).")

    @admin.action(description="Resolve selected dead letters with a note…", permissions=["triage"])
    def resolve(self, request: HttpRequest, queryset: QuerySet[DeadLetter]) -> TemplateResponse | None:
        ids = self.selected_ids(request, queryset)
        if ids is None:
            return None
        form = ResolveForm(request.POST if request.POST.get("post") == "yes" else None)
        if form.is_valid():
            report = dead_letter_resolve(
                letter_ids=ids, user=acting_user(request), note=form.cleaned_data["note"], now=timezone.now()
            )
            self.report(request, report, verb="Resolved", change_message="Resolved (admin action).")
            return None
        letters = list(queryset.order_by("pk"))
        open_count = sum(1 for letter in letters if not letter.resolution)
        selected = len(letters)
        intro = (
            f"{open_count:,} of the {selected:,} selected dead letter{'' if selected == 1 else 's'} "
            f"{'is' if open_count == 1 else 'are'} unresolved and will be resolved with this note (nothing is run "
            "again)."
        )
        if open_count != selected:
            intro += " The others were already requeued or resolved: they are skipped."
        return self.resolve_page(
            request,
            form=form,
            intro=intro,
            items=[
                f"#{letter.pk} {letter.kind} ({letter.get_source_display()})"
                + (f": already {letter.resolution}, skipped" if letter.resolution else "")
                for letter in letters
            ],
            hidden=[
                *((helpers.ACTION_CHECKBOX_NAME, letter.pk) for letter in letters),
                ("action", "resolve"),
                ("post", "yes"),
            ],
            open_count=open_count,
        )

    @admin.display(description="letter", ordering="pk")
    def letter(self, letter: DeadLetter) -> str:
        return f"#{letter.pk}"

    @admin.display(description="state")
    def state_badge(self, letter: DeadLetter) -> SafeString:
        return badge(letter.resolution or "unresolved")

    @admin.display(description="kind")
    def kind_clipped(self, letter: DeadLetter) -> SafeString | str:
        return clipped(letter.kind)

    @admin.display(description="source")
    def origin(self, letter: DeadLetter) -> str:
        return "run" if letter.source == DeadLetter.Source.FUNCTION_RUN else "job"

    @admin.display(description="tenant")
    def tenant(self, letter: DeadLetter) -> SafeString | str:
        return tenant_cell(letter.scope)

    @admin.display(description="error")
    def error_preview(self, letter: DeadLetter) -> SafeString | str:
        return clipped(first_line(letter.error), "wide")

    @admin.display(description="created", ordering="created_at")
    def created(self, letter: DeadLetter) -> SafeString | str:
        return ago(letter.created_at)

    @admin.display(description="from")
    def origin_link(self, letter: DeadLetter) -> SafeString | str:
        if letter.function_run_id is not None:
            return link(change_url(FunctionRun, letter.function_run_id), f"run #{letter.function_run_id}")
        if letter.job_id is not None:
            return link(change_url(BackgroundJob, letter.job_id), f"job #{letter.job_id}")
        return EMPTY

    @admin.display(description="requeued as")
    def requeued_link(self, letter: DeadLetter) -> SafeString | str:
        if letter.requeued_job_id is not None:
            return link(change_url(BackgroundJob, letter.requeued_job_id), f"job #{letter.requeued_job_id}")
        if letter.requeued_dispatch_key:
            key = letter.requeued_dispatch_key
            return format_html(
                "{} · {}",
                link(changelist_url(DispatchWindow, dispatch_key=key), "window"),
                link(changelist_url(FunctionRun, dispatch_key=key), "run"),
            )
        return EMPTY

    @admin.display(description="dispatch window")
    def window_link(self, letter: DeadLetter) -> SafeString | str:
        key = letter.dispatch_key
        return link(changelist_url(DispatchWindow, dispatch_key=key), key) if key else EMPTY

    @admin.display(description="payload")
    def payload_json(self, letter: DeadLetter) -> SafeString:
        return pretty_json(letter.payload)
