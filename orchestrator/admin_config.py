"""The admin app, with Orchestrator's site (the health panel on the index) as its default site.

Listed in INSTALLED_APPS in place of "django.contrib.admin". It lives in its own
module because apps.py may hold only the project's own AppConfig.
"""

from __future__ import annotations

from django.contrib.admin.apps import AdminConfig


class OrchestratorAdminConfig(AdminConfig):
    default_site = "orchestrator.admin_site.OrchestratorAdminSite"
