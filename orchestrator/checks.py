"""Configuration checks: `manage.py check --deploy` says what to set before going live (docs/operations.md).

Each check is a pure function of a `DeployConfig` read from settings, so the
cron view can ask for the standing errors on every call (`deploy_errors()`)
without running the check framework: the answer is cached per settings state.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.utils import timezone

from core.inngest import current_config
from dispatch.checks import registry_messages
from dispatch.modes import emergency_fallback, publishing_configured
from dispatch.registry import RegistryProblems, registry_problem
from orchestrator.environment_checks import empty_secret_key_messages, unreadable_messages, unreadable_variables

TAG = "orchestrator"
ROLLOUT_HINT = "See docs/operations.md, 'Rolling out and rolling back'."


@dataclass(frozen=True)
class DeployConfig:
    """The settings the deploy checks judge, reduced to what they need (no secret values)."""

    debug: bool
    cron_secret_set: bool
    secret_key_is_dev: bool
    signing_key_set: bool
    inngest_cloud: bool
    inngest_dev: bool
    preview_variable: str  # "DEPLOY_ENV" or "VERCEL_ENV" when this is a preview deployment, else ""
    inngest_env: str
    canary_percent: int
    registry_problem: RegistryProblems  # why settings.CRON_JOBS is invalid (false when it is valid)
    unreadable: tuple[tuple[str, str], ...] = ()  # (variable, why) for each value settings could not read


def read_config() -> DeployConfig:
    """Return the deploy-relevant state of the current settings."""
    preview = next((name for name in ("DEPLOY_ENV", "VERCEL_ENV") if _is_preview(getattr(settings, name))), "")
    return DeployConfig(
        debug=bool(settings.DEBUG),
        cron_secret_set=bool(settings.CRON_SECRET),
        secret_key_is_dev=settings.SECRET_KEY == settings.DEV_SECRET_KEY,
        signing_key_set=bool(settings.INNGEST_SIGNING_KEY),
        inngest_cloud=inngest_cloud_mode(),
        inngest_dev=current_config().dev_mode,
        preview_variable=preview,
        inngest_env=settings.INNGEST_ENV.strip(),
        canary_percent=settings.BACKGROUND_JOBS_INNGEST_PERCENT,
        registry_problem=registry_problem(),
        unreadable=unreadable_variables(),
    )


def inngest_cloud_mode() -> bool:
    """Return whether Inngest is in use (publishing configured, or a dispatch flag on) without the dev server."""
    in_use = publishing_configured() or any(settings.DISPATCH_FLAGS.values())
    return in_use and not current_config().dev_mode


def _is_preview(value: str) -> bool:
    return value.strip().lower() == "preview"


# --- The checks, as pure functions of the config ------------------------------


def cron_secret_messages(config: DeployConfig) -> list[CheckMessage]:
    if config.debug or config.cron_secret_set:
        return []
    return [
        Error(
            "CRON_SECRET is not set and DEBUG is false: every call to /api/cron/<job> is refused.",
            hint="Set CRON_SECRET to a long random value; the cron service sends it as 'Authorization: Bearer …'.",
            id="orchestrator.E001",
        )
    ]


def signing_key_messages(config: DeployConfig) -> list[CheckMessage]:
    if not config.inngest_cloud or config.signing_key_set:
        return []
    return [
        Error(
            "Inngest runs in cloud mode (INNGEST_EVENT_KEY is set or a *_USE_INNGEST flag is true, and "
            "INNGEST_DEV is not) but INNGEST_SIGNING_KEY is not set: /api/inngest cannot verify that calls "
            "come from Inngest.",
            hint="Set INNGEST_SIGNING_KEY from the Inngest dashboard, or INNGEST_DEV=1 to use the dev server.",
            id="orchestrator.E002",
        )
    ]


def dev_server_messages(config: DeployConfig) -> list[CheckMessage]:
    if config.debug or not config.inngest_dev:
        return []
    return [
        Error(
            "INNGEST_DEV is set and DEBUG is false: dev mode accepts calls to /api/inngest without a signature, "
            "so anyone who can reach it could start the functions; /api/inngest and cron dispatch are refused.",
            hint="In production unset INNGEST_DEV and set INNGEST_SIGNING_KEY (and INNGEST_EVENT_KEY); "
            "the dev server is for local use, with DEBUG=true. See docs/security.md, 'Signatures'.",
            id="orchestrator.E006",
        )
    ]


def preview_env_messages(config: DeployConfig) -> list[CheckMessage]:
    if not config.preview_variable or config.inngest_env.lower() != "production":
        return []
    return [
        Error(
            f"This is a preview deployment ({config.preview_variable}=preview) but INNGEST_ENV=production: "
            "the preview would publish into, and be driven by, production's Inngest environment.",
            hint="Set INNGEST_ENV to the preview's branch environment (for example the branch name), or unset it.",
            id="orchestrator.E003",
        )
    ]


def secret_key_messages(config: DeployConfig) -> list[CheckMessage]:
    if not config.secret_key_is_dev:
        return []
    return [
        Error(
            "SECRET_KEY is the public development key.",
            hint="Set SECRET_KEY to a long random value, e.g. the output of "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))'.",
            id="orchestrator.E004",
        )
    ]


def canary_range_messages(config: DeployConfig) -> list[CheckMessage]:
    unreadable = dict(config.unreadable).get("BACKGROUND_JOBS_INNGEST_PERCENT")
    if unreadable:
        problem = f"{unreadable}: no window dispatches to Inngest until it is fixed."
    elif 0 <= config.canary_percent <= 100:
        return []
    else:
        problem = f"BACKGROUND_JOBS_INNGEST_PERCENT={config.canary_percent} is outside 0–100."
    return [
        Error(
            problem,
            hint=f"Set BACKGROUND_JOBS_INNGEST_PERCENT to a whole number from 0 to 100 (default 100). {ROLLOUT_HINT}",
            id="orchestrator.E005",
        )
    ]


def canary_messages(config: DeployConfig) -> list[CheckMessage]:
    if not 0 <= config.canary_percent < 100 or "BACKGROUND_JOBS_INNGEST_PERCENT" in dict(config.unreadable):
        return []
    return [
        Warning(
            f"Canary: only {config.canary_percent} % of windows dispatch to Inngest "
            f"(BACKGROUND_JOBS_INNGEST_PERCENT={config.canary_percent}); the rest run inline.",
            hint="Raise BACKGROUND_JOBS_INNGEST_PERCENT (5 → 25 → 100) while "
            f"'python manage.py orchestrator_report' passes. {ROLLOUT_HINT}",
            id="orchestrator.W002",
        )
    ]


def emergency_fallback_messages(*, now: datetime) -> list[CheckMessage]:
    """Warn when the emergency fallback is switched on without a future _UNTIL (it would never engage)."""
    problem = emergency_fallback(now=now).problem
    if not problem:
        return []
    return [
        Warning(
            f"The emergency inline fallback is switched on but inactive: {problem}.",
            hint="Set BACKGROUND_JOBS_INLINE_EMERGENCY_FALLBACK_UNTIL to a future ISO-8601 time "
            "(e.g. 2026-01-31T18:00:00Z) for as long as the fallback is needed, or set "
            f"BACKGROUND_JOBS_INLINE_EMERGENCY_FALLBACK=false. {ROLLOUT_HINT}",
            id="orchestrator.W001",
        )
    ]


def metrics_token_messages(*, debug: bool, token_set: bool) -> list[CheckMessage]:
    if debug or token_set:
        return []
    return [
        Warning(
            "METRICS_TOKEN is not set and DEBUG is false: GET /metrics answers 503 to every scrape.",
            hint="Set METRICS_TOKEN; Prometheus sends it as 'Authorization: Bearer …' (docs/operations.md, 'Metrics').",
            id="orchestrator.W004",
        )
    ]


# --- Registration with Django's check framework -------------------------------


@register(TAG, Tags.security, deploy=True)
def check_cron_secret(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return cron_secret_messages(read_config())


@register(TAG, Tags.security, deploy=True)
def check_inngest_signing_key(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return signing_key_messages(read_config())


@register(TAG, Tags.security, deploy=True)
def check_dev_server(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return dev_server_messages(read_config())


@register(TAG, deploy=True)
def check_preview_environment(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return preview_env_messages(read_config())


@register(TAG, Tags.security, deploy=True)
def check_secret_key(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return secret_key_messages(read_config())


@register(TAG)
def check_canary_range(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return canary_range_messages(read_config())


@register(TAG, deploy=True)
def check_canary(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return canary_messages(read_config())


@register(TAG, Tags.security, deploy=True)
def check_metrics_token(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return metrics_token_messages(debug=bool(settings.DEBUG), token_set=bool(settings.METRICS_TOKEN))


@register(TAG)
def check_emergency_fallback(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return emergency_fallback_messages(now=timezone.now())


# --- The errors that make the cron view refuse to dispatch --------------------


def deploy_errors() -> tuple[CheckMessage, ...]:
    """Return the standing configuration errors, computed once per settings state.

    The cron view calls this on every request, so it must cost microseconds: the
    settings are reduced to a small hashable config and the checks' verdict on it
    is cached.
    """
    return _errors_for(read_config())


@lru_cache(maxsize=16)
def _errors_for(config: DeployConfig) -> tuple[CheckMessage, ...]:
    messages = [
        *cron_secret_messages(config),
        *signing_key_messages(config),
        *dev_server_messages(config),
        *preview_env_messages(config),
        *secret_key_messages(config),
        *canary_range_messages(config),
        *registry_messages(config.registry_problem),
        *empty_secret_key_messages(config.unreadable),
        *unreadable_messages(config.unreadable),
    ]
    return tuple(message for message in messages if message.is_serious())
