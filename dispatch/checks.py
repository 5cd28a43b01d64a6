"""System checks for the dispatcher: a bad cron registry fails `manage.py check`."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, register

from dispatch.registry import registry_problem


@register()
def check_cron_registry(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report an invalid settings.CRON_JOBS as an error that says what to fix."""
    return registry_messages(registry_problem())


def registry_messages(problem: str) -> list[CheckMessage]:
    """Return the error for a registry problem ("" for none)."""
    if not problem:
        return []
    return [
        Error(
            f"Invalid cron registry: {problem}",
            hint="Fix CRON_JOBS (see docs/cron.md, 'Registering cron jobs').",
            id="dispatch.E001",
        )
    ]
