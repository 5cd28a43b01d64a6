"""System checks for the dispatcher: a bad cron registry fails `manage.py check`.

dispatch.E001: an invalid CRON_JOBS entry; dispatch.E002: a job whose callable cannot be imported.
"""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, register

from dispatch.registry import RegistryProblems, registry_problem


@register()
def check_cron_registry(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report an invalid settings.CRON_JOBS as an error that says what to fix."""
    return registry_messages(registry_problem())


def registry_messages(problems: RegistryProblems) -> list[CheckMessage]:
    """Return the errors for the registry's problems (none when it is valid)."""
    messages: list[CheckMessage] = [
        Error(
            f"A cron job's callable cannot be imported: {problem}",
            hint="Fix the job's module, or its `callable` in CRON_JOBS (see docs/cron.md, 'Registering cron jobs').",
            id="dispatch.E002",
        )
        for problem in problems.unimportable
    ]
    if problems.other:
        messages.append(
            Error(
                f"Invalid cron registry: {problems.other}",
                hint="Fix CRON_JOBS (see docs/cron.md, 'Registering cron jobs').",
                id="dispatch.E001",
            )
        )
    return messages
