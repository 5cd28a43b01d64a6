from __future__ import annotations

from django.apps import AppConfig


class DispatchConfig(AppConfig):
    name = "dispatch"
    verbose_name = "Cron dispatch"

    def ready(self) -> None:
        from dispatch import checks  # noqa: F401  (registers the system checks)
        from dispatch.drain import drain_request
        from jobs.hooks import jobs_due_hook_register

        jobs_due_hook_register(drain_request)
