from __future__ import annotations

from typing import Any

import pytest
from django.core.checks import CheckMessage, run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from freezegun import freeze_time

from orchestrator.checks import deploy_errors

OURS = ("orchestrator.", "dispatch.")
GOOD_KEY = "a-production-secret-key-that-is-long-and-random-enough-0123456789"


@pytest.fixture(autouse=True)
def production(settings: Any) -> None:
    """A correct production configuration: every test breaks exactly one thing."""
    settings.DEBUG = False
    settings.SECRET_KEY = GOOD_KEY
    settings.CRON_SECRET = "cron-secret"
    settings.METRICS_TOKEN = "metrics-token"
    settings.DEPLOY_ENV = "production"
    settings.VERCEL_ENV = ""
    settings.INNGEST_EVENT_KEY = "event-key"
    settings.INNGEST_SIGNING_KEY = "signkey-prod-0123"
    settings.INNGEST_DEV = ""
    settings.INNGEST_ENV = ""
    settings.DISPATCH_FLAGS = {}
    settings.BACKGROUND_JOBS_INNGEST_PERCENT = 100
    settings.BACKGROUND_JOBS_INLINE_EMERGENCY_FALLBACK = False
    settings.BACKGROUND_JOBS_INLINE_EMERGENCY_FALLBACK_UNTIL = ""


def deploy_messages() -> dict[str, CheckMessage]:
    """Return our messages from the checks `manage.py check --deploy` runs, by id."""
    return {str(m.id): m for m in run_checks(include_deployment_checks=True) if str(m.id).startswith(OURS)}


def test_checks__a_correct_production_configuration_raises_nothing() -> None:
    assert deploy_messages() == {}
    assert deploy_errors() == ()


@pytest.mark.parametrize(
    ("changes", "check_id", "hint_names"),
    [
        ({"CRON_SECRET": ""}, "orchestrator.E001", "CRON_SECRET"),
        ({"INNGEST_SIGNING_KEY": ""}, "orchestrator.E002", "INNGEST_SIGNING_KEY"),
        (
            {
                "INNGEST_SIGNING_KEY": "",
                "INNGEST_EVENT_KEY": "",
                "DISPATCH_FLAGS": {"BACKGROUND_JOBS_USE_INNGEST": True},
            },
            "orchestrator.E002",
            "INNGEST_SIGNING_KEY",
        ),
        ({"DEPLOY_ENV": "preview", "INNGEST_ENV": "production"}, "orchestrator.E003", "INNGEST_ENV"),
        ({"DEPLOY_ENV": "", "VERCEL_ENV": "preview", "INNGEST_ENV": "Production"}, "orchestrator.E003", "INNGEST_ENV"),
        (
            {"SECRET_KEY": "django-insecure-orchestrator-development-key-do-not-deploy"},
            "orchestrator.E004",
            "SECRET_KEY",
        ),
        ({"BACKGROUND_JOBS_INNGEST_PERCENT": 101}, "orchestrator.E005", "BACKGROUND_JOBS_INNGEST_PERCENT"),
        ({"BACKGROUND_JOBS_INNGEST_PERCENT": -1}, "orchestrator.E005", "BACKGROUND_JOBS_INNGEST_PERCENT"),
        ({"INNGEST_DEV": "1", "INNGEST_SIGNING_KEY": ""}, "orchestrator.E006", "INNGEST_SIGNING_KEY"),
        ({"INNGEST_DEV": "http://127.0.0.1:8288"}, "orchestrator.E006", "INNGEST_DEV"),  # Even beside a signing key.
        ({"CRON_JOBS": [{"name": "Bad Name", "window_seconds": 60, "callable": "x.y"}]}, "dispatch.E001", "CRON_JOBS"),
    ],
)
def test_checks__each_error_is_raised_says_what_to_set_and_refuses_cron(
    settings: Any, changes: dict[str, Any], check_id: str, hint_names: str
) -> None:
    for name, value in changes.items():
        setattr(settings, name, value)

    messages = deploy_messages()

    assert list(messages) == [check_id]
    assert messages[check_id].is_serious()
    assert hint_names in f"{messages[check_id].msg} {messages[check_id].hint}"
    assert [str(error.id) for error in deploy_errors()] == [check_id]


@pytest.mark.parametrize(
    "changes",
    [
        {"CRON_SECRET": "", "DEBUG": True},  # Local use without a secret.
        {"INNGEST_SIGNING_KEY": "", "INNGEST_DEV": "1", "DEBUG": True},  # Local use with the dev server.
        {"INNGEST_SIGNING_KEY": "", "INNGEST_EVENT_KEY": ""},  # Inngest is not in use: inline.
        {"INNGEST_SIGNING_KEY": "", "INNGEST_EVENT_KEY": "", "DISPATCH_FLAGS": {"BACKGROUND_JOBS_USE_INNGEST": False}},
        {"DEPLOY_ENV": "preview", "INNGEST_ENV": "feature-x"},
        {"VERCEL_ENV": "preview", "INNGEST_ENV": ""},
        {"DEPLOY_ENV": "production", "INNGEST_ENV": "production"},
        {"BACKGROUND_JOBS_INNGEST_PERCENT": 0},
    ],
)
def test_checks__errors_are_not_raised_when_the_configuration_allows_it(settings: Any, changes: dict[str, Any]) -> None:
    for name, value in changes.items():
        setattr(settings, name, value)

    assert [m for m in deploy_messages().values() if m.is_serious()] == []


def test_check_dev_server__dev_mode_is_an_error_outside_debug(settings: Any) -> None:
    settings.INNGEST_DEV = "1"
    settings.INNGEST_SIGNING_KEY = ""

    messages = deploy_messages()

    assert list(messages) == ["orchestrator.E006"]
    assert "without a signature" in messages["orchestrator.E006"].msg
    assert "DEBUG=true" in str(messages["orchestrator.E006"].hint)
    settings.DEBUG = True
    assert deploy_messages() == {}  # Local use with the dev server.


@pytest.mark.parametrize("percent", [5, 25, 99])
def test_check_canary__warns_below_100_percent(settings: Any, percent: int) -> None:
    settings.BACKGROUND_JOBS_INNGEST_PERCENT = percent

    messages = deploy_messages()

    assert list(messages) == ["orchestrator.W002"]
    assert not messages["orchestrator.W002"].is_serious()
    assert f"only {percent} %" in messages["orchestrator.W002"].msg
    assert "orchestrator_report" in str(messages["orchestrator.W002"].hint)
    assert deploy_errors() == ()  # A canary is a warning: cron calls are served.


@pytest.mark.parametrize(
    ("until", "problem"),
    [
        ("", "is not set"),
        ("tomorrow", "is invalid"),
        ("2026-03-14T15:00:00", "is invalid"),  # No offset.
        ("2026-03-14T14:59:59Z", "has passed"),
    ],
)
@freeze_time("2026-03-14T15:00:00Z")
def test_check_emergency_fallback__warns_without_a_future_until(settings: Any, until: str, problem: str) -> None:
    settings.BACKGROUND_JOBS_INLINE_EMERGENCY_FALLBACK = True
    settings.BACKGROUND_JOBS_INLINE_EMERGENCY_FALLBACK_UNTIL = until

    messages = {str(m.id): m for m in run_checks() if str(m.id).startswith(OURS)}  # Plain `manage.py check`.

    assert list(messages) == ["orchestrator.W001"]
    assert problem in messages["orchestrator.W001"].msg
    assert "BACKGROUND_JOBS_INLINE_EMERGENCY_FALLBACK_UNTIL" in str(messages["orchestrator.W001"].hint)


@pytest.mark.parametrize(
    ("switch", "until"), [(True, "2026-03-14T18:00:00Z"), (False, ""), (False, "2020-01-01T00:00Z")]
)
@freeze_time("2026-03-14T15:00:00Z")
def test_check_emergency_fallback__silent_when_bounded_or_off(settings: Any, switch: bool, until: str) -> None:
    settings.BACKGROUND_JOBS_INLINE_EMERGENCY_FALLBACK = switch
    settings.BACKGROUND_JOBS_INLINE_EMERGENCY_FALLBACK_UNTIL = until

    assert deploy_messages() == {}


def test_check_command__deploy_fails_on_an_error_and_names_it(settings: Any) -> None:
    settings.INNGEST_SIGNING_KEY = ""

    with pytest.raises(SystemCheckError, match=r"orchestrator\.E002.*INNGEST_SIGNING_KEY"):
        call_command("check", "--deploy")


def test_check_command__without_deploy_ignores_the_deploy_errors(settings: Any) -> None:
    settings.INNGEST_SIGNING_KEY = ""
    settings.CRON_SECRET = ""

    call_command("check")


def test_deploy_errors__follow_the_settings(settings: Any) -> None:
    settings.SECRET_KEY = settings.DEV_SECRET_KEY
    assert [str(error.id) for error in deploy_errors()] == ["orchestrator.E004"]

    settings.SECRET_KEY = GOOD_KEY

    assert deploy_errors() == ()


def test_checks__production_without_a_metrics_token_is_warned_that_scrapes_are_refused(settings: Any) -> None:
    settings.METRICS_TOKEN = ""

    messages = deploy_messages()

    assert list(messages) == ["orchestrator.W004"]
    assert not messages["orchestrator.W004"].is_serious()
    assert "GET /metrics answers 503" in messages["orchestrator.W004"].msg
    assert deploy_errors() == ()  # The cron view still dispatches.


@pytest.mark.parametrize(
    ("name", "check_id"),
    [
        ("INNGEST_STEP_BUDGET_SECONDS", "orchestrator.E010"),
        ("INLINE_TIME_BUDGET_SECONDS", "orchestrator.E011"),
    ],
)
def test_check_lease_budgets__a_budget_over_half_the_lease_is_an_error(settings: Any, name: str, check_id: str) -> None:
    settings.JOBS_LEASE_SECONDS = 60
    setattr(settings, name, 30)
    assert check_ids() == []

    setattr(settings, name, 30.5)

    with pytest.raises(SystemCheckError, match=rf"{check_id}.*{name} \(30\.5 s\).*JOBS_LEASE_SECONDS \(60 s\)"):
        call_command("check")


def test_check_lease_budgets__a_lease_too_short_for_run_jobs_default_budget_is_an_error(settings: Any) -> None:
    settings.INNGEST_STEP_BUDGET_SECONDS = settings.INLINE_TIME_BUDGET_SECONDS = 5
    settings.JOBS_LEASE_SECONDS = 19

    assert check_ids() == ["orchestrator.E012"]
    with pytest.raises(SystemCheckError, match=r"E012.*budget of run_jobs \(10 s\).*JOBS_LEASE_SECONDS \(19 s\)"):
        call_command("check")


def check_ids() -> list[str]:
    """Return the ids of our messages from plain `manage.py check`."""
    return [str(m.id) for m in run_checks() if str(m.id).startswith(OURS)]


@pytest.mark.parametrize("word", ["off", "no", "false", "0"])
def test_check_dev_server__a_false_word_is_not_dev_mode(settings: Any, word: str) -> None:
    settings.INNGEST_DEV = word

    assert "orchestrator.E006" not in deploy_messages()
