from __future__ import annotations

from django.contrib import admin

from jobs.models import BackgroundJob, QueueHealthSnapshot
from orchestrator.admin import ReadOnlyAdmin


@admin.register(BackgroundJob)
class BackgroundJobAdmin(ReadOnlyAdmin):
    list_display = ("id", "kind", "tenant", "status", "attempts", "max_attempts", "run_after", "created_at")
    list_filter = ("status", "kind")
    search_fields = ("=dedupe_key", "=tenant")
    date_hierarchy = "created_at"
    show_full_result_count = False


@admin.register(QueueHealthSnapshot)
class QueueHealthSnapshotAdmin(ReadOnlyAdmin):
    list_display = ("taken_at", "ready", "pending", "running", "dead", "lag_seconds", "unresolved_dead_letters")
    date_hierarchy = "taken_at"
    ordering = ("-taken_at",)
    show_full_result_count = False
