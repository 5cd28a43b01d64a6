"""System checks for the dispatcher: a bad cron registry fails `manage.py check`."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, register

from dispatch.exceptions import RegistryError
from dispatch.registry import cron_jobs


@register()
def check_cron_registry(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report an invalid settings.CRON_JOBS as an error that says what to fix."""
    try:
        cron_jobs()
    except RegistryError as exc:
        return [Error(f"Invalid cron registry: {exc}", hint="Fix settings.CRON_JOBS (SPEC §3).", id="dispatch.E001")]
    return []
