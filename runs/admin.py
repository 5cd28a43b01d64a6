from __future__ import annotations

from django.contrib import admin

from orchestrator.admin import ReadOnlyAdmin
from runs.models import DeadLetter, FunctionRun


@admin.register(FunctionRun)
class FunctionRunAdmin(ReadOnlyAdmin):
    list_display = ("function_id", "dispatch_key", "status", "attempts", "duration_ms", "started_at")
    list_filter = ("status", "function_id")
    search_fields = ("=dispatch_key", "=correlation_id", "=run_id")
    date_hierarchy = "started_at"
    show_full_result_count = False


@admin.register(DeadLetter)
class DeadLetterAdmin(ReadOnlyAdmin):
    list_display = ("kind", "source", "scope", "attempts", "created_at", "resolution")
    list_filter = ("source", "kind", "resolution")
    search_fields = ("=dispatch_key", "=correlation_id", "=run_id")
    date_hierarchy = "created_at"
    show_full_result_count = False
