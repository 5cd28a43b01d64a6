"""Configuration checks of the environment's text (plain `manage.py check`): a value settings could not read.

Settings never raise on a bad value: they keep a safe one and record why
(core.environment). These checks say what is wrong and what to set; the canary's
percentage (orchestrator.E005) and the CRON_JOBS registry (dispatch.E001) have
checks of their own, and so does an empty SECRET_KEY (orchestrator.E007). The web
process, which runs no check, logs the same at start-up (`unreadable_variables_log`).
"""

from __future__ import annotations

import logging
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

logger = logging.getLogger(__name__)

TAG = "orchestrator"
CONFIGURATION = "docs/configuration.md"
# Unreadable variables reported by a check of their own.
OWN_CHECKS = frozenset({"SECRET_KEY", "BACKGROUND_JOBS_INNGEST_PERCENT", "CRON_JOBS"})
# What stands in for an unreadable value, where it is not the variable's default.
STAND_INS = {
    "DEBUG": "DEBUG is off until it is fixed (an unreadable DEBUG fails closed)",
    "DATABASE_URL": "no database can be used until it is fixed",
    "REDIS_URL": "status blobs are kept in each process's memory until it is fixed",
    "SECRET_KEY": "each process signs sessions with a random key of its own until it is fixed",
    "BACKGROUND_JOBS_INNGEST_PERCENT": "no window dispatches to Inngest until it is fixed",
    "CRON_JOBS": "no cron job of CRON_JOBS is registered until it is fixed",
}


def unreadable_variables() -> tuple[tuple[str, str], ...]:
    """Return (variable, why) for each variable settings could not read, in name order."""
    errors: dict[str, str] = getattr(settings, "ENVIRONMENT_ERRORS", {})
    return tuple(sorted(errors.items()))


def empty_secret_key_messages(unreadable: tuple[tuple[str, str], ...]) -> list[CheckMessage]:
    if "SECRET_KEY" not in dict(unreadable):
        return []
    return [
        Error(
            "SECRET_KEY is set but empty: each process signs sessions with a random key of its own, so sign-ins "
            "to the admin do not survive a restart and are not shared between processes.",
            hint="Set SECRET_KEY to a long random value, e.g. the output of "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))', or unset it for local use "
            f"(see {CONFIGURATION}).",
            id="orchestrator.E007",
        )
    ]


def unreadable_messages(unreadable: tuple[tuple[str, str], ...]) -> list[CheckMessage]:
    return [
        Error(
            f"{why}: {STAND_INS.get(name, 'its default is used until it is fixed')}.",
            hint=f"Fix {name}, or unset it to use its default ({CONFIGURATION} lists every variable, its type and "
            "its default).",
            id="orchestrator.E008",
        )
        for name, why in unreadable
        if name not in OWN_CHECKS
    ]


def unreadable_variables_log() -> None:
    """Log an error for each variable settings could not read, saying what stands in for it.

    The web process calls it at start-up: gunicorn runs no system check, and a
    typo must not go unnoticed until someone runs `manage.py check`.
    """
    for name, why in unreadable_variables():
        logger.error(
            f"{why}: {STAND_INS.get(name, 'its default is used until it is fixed')}. Fix {name}: "
            f"'python manage.py check' says what to set ({CONFIGURATION}).",
            extra={"action": "configuration", "variable": name},
        )


@register(TAG)
def check_empty_secret_key(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return empty_secret_key_messages(unreadable_variables())


@register(TAG)
def check_unreadable_variables(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return unreadable_messages(unreadable_variables())
