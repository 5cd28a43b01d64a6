from __future__ import annotations

from django.contrib import admin
from django.urls import path

from dispatch.views import cron
from jobs.views import enqueue
from orchestrator.views import health, status
from runs.views import serve as inngest_serve

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/cron/<str:job>", cron, name="cron"),
    path("api/jobs", enqueue, name="jobs-enqueue"),
    path("api/inngest", inngest_serve, name="inngest"),
    path("api/health", health, name="health"),
    path("api/status", status, name="status"),
]
