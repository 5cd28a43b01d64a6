from __future__ import annotations

from django.apps import AppConfig


class OrchestratorConfig(AppConfig):
    name = "orchestrator"
    verbose_name = "Orchestrator"

    def ready(self) -> None:
        from orchestrator import checks, lease_checks, sync_checks  # noqa: F401  (register the configuration checks)
