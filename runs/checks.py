"""System checks of the execution layer: the reconciler's settings."""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, register

from runs.reconcile_settings import SEE, problems


@register()
def check_reconciler_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report each unreadable reconciler setting as an error saying what to set."""
    return [
        Error(f"Invalid reconciler setting: {problem}", hint=f"Fix it ({SEE}).", id="runs.E001")
        for problem in problems()
    ]
