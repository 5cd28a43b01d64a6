"""The admin site: Django's, with the health panel on its index page."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.utils import timezone

from core.display import EMPTY
from orchestrator.dashboard import dashboard_build

# Browsing the panel needs what browsing the windows needs.
DASHBOARD_PERMISSION = "dispatch.view_dispatchwindow"


class OrchestratorAdminSite(admin.AdminSite):
    site_header = "Orchestrator"
    site_title = "Orchestrator admin"
    index_title = "Operations"
    index_template = "admin/orchestrator/index.html"
    # The ledgers' tables need the width (every changelist fits 1024 px); the breadcrumbs and the index navigate.
    enable_nav_sidebar = False
    # The service has no site of its own ("/" answers 404): no "View site" link.
    site_url = None
    empty_value_display = EMPTY

    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        """Render the app list, with the health panel above it for users who may see the windows."""
        context = dict(extra_context or {})
        if request.user.has_perm(DASHBOARD_PERMISSION):
            context["dashboard"] = dashboard_build(now=timezone.now())
        return super().index(request, context)
