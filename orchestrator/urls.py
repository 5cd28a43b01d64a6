from __future__ import annotations

from django.contrib import admin
from django.urls import path

from dispatch.views import cron
from jobs.views import enqueue
from orchestrator.checks import deploy_errors
from orchestrator.views import health, metrics, status
from runs.views import serve as inngest_serve

urlpatterns = [
    path("admin/", admin.site.urls),
    # The cron view refuses to dispatch while the site's deploy checks find an error.
    path("api/cron/<str:job>", cron, {"deploy_errors": deploy_errors}, name="cron"),
    path("api/jobs", enqueue, name="jobs-enqueue"),
    path("api/inngest", inngest_serve, name="inngest"),
    path("api/health", health, name="health"),
    path("api/status", status, name="status"),
    path("metrics", metrics, name="metrics"),
]
