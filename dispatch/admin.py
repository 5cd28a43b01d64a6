from __future__ import annotations

from django.contrib import admin

from dispatch.models import DispatchWindow
from orchestrator.admin import ReadOnlyAdmin


@admin.register(DispatchWindow)
class DispatchWindowAdmin(ReadOnlyAdmin):
    list_display = ("dispatch_key", "job", "status", "mode", "source", "duplicate_ticks", "latency_ms", "created_at")
    list_filter = ("status", "mode", "job", "source")
    search_fields = ("=dispatch_key", "=correlation_id")
    date_hierarchy = "created_at"
    show_full_result_count = False
