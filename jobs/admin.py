from __future__ import annotations

from django.contrib import admin

from jobs.models import BackgroundJob
from orchestrator.admin import ReadOnlyAdmin


@admin.register(BackgroundJob)
class BackgroundJobAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "tenant", "status", "attempts", "max_attempts", "run_after", "created_at")
    list_filter = ("status", "kind")
    search_fields = ("=dedupe_key", "=tenant")
    date_hierarchy = "created_at"
    show_full_result_count = False
