"""Bad configuration is a check, never a traceback: settings keep a safe value, a check says what to set."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from core.environment import Env
from testsupport.procs import run_manage

BARE = ("DATABASE_URL", "REDIS_URL", "INNGEST_EVENT_KEY", "INNGEST_DEV", "DEBUG", "CRON_SECRET", "SECRET_KEY")


def manage_check(tmp_path: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    """Run `manage.py check` (with the database's checks, as migrate runs them) on the defaults with `variables` set."""
    env = {key: value for key, value in os.environ.items() if key not in BARE}
    env.update(DJANGO_SETTINGS_MODULE="orchestrator.settings", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    env.update(variables)  # (this may name another DATABASE_URL)
    return run_manage("check", "--database", "default", env=env)


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        (
            {"BACKGROUND_JOBS_INNGEST_PERCENT": "abc"},
            "(orchestrator.E005) BACKGROUND_JOBS_INNGEST_PERCENT='abc' is not a whole number: no window dispatches "
            "to Inngest until it is fixed.",
        ),
        (
            {"CRON_JOBS": '[{"name": "nightly"'},
            '(dispatch.E001) Invalid cron registry: CRON_JOBS=\'[{"name": "nightly"\' is not valid JSON '
            "(Expecting ',' delimiter: line 1 column 20 (char 19)); no cron job of CRON_JOBS is registered until "
            "it is fixed",
        ),
        ({"CRON_JOBS": '{"name": "nightly"}'}, "CRON_JOBS must be a list of cron jobs"),
        ({"SECRET_KEY": ""}, "(orchestrator.E007) SECRET_KEY is set but empty"),
        (
            {"JOBS_BATCH_SIZE": "abc"},
            "(orchestrator.E008) JOBS_BATCH_SIZE='abc' is not a whole number: its default is used until it is fixed.",
        ),
        (
            {"BACKGROUND_JOBS_USE_INNGEST": "flase"},
            "(orchestrator.E008) BACKGROUND_JOBS_USE_INNGEST='flase' is neither true nor false",
        ),
        ({"INLINE_TIME_BUDGET_SECONDS": "10s"}, "INLINE_TIME_BUDGET_SECONDS='10s' is not a number"),
        (
            {"DATABASE_URL": "postgres://user:hunter2@db:notaport/orders"},
            "(orchestrator.E008) DATABASE_URL is not a database URL such as postgres://user:password@host:5432/name: "
            "no database can be used until it is fixed.",
        ),
    ],
    ids=["canary", "cron-jobs-json", "cron-jobs-object", "empty-secret", "batch-size", "flag", "budget", "database"],
)
def test_manage_py_check__a_value_settings_cannot_read_is_a_check_error(
    tmp_path: Path, variables: dict[str, str], message: str
) -> None:
    done = manage_check(tmp_path, **variables)

    assert done.returncode == 1
    assert "hunter2" not in done.stderr
    assert "Traceback" not in done.stderr
    assert message in done.stderr
    assert "docs/" in done.stderr  # the hint names the page to read
    assert "SPEC" not in done.stderr


def test_manage_py_check__the_defaults_pass(tmp_path: Path) -> None:
    done = manage_check(tmp_path)

    assert (done.returncode, done.stdout.strip()) == (0, "System check identified no issues (0 silenced)."), done.stderr


@pytest.mark.parametrize(
    ("variable", "raw", "cast", "default"),
    [("A", "x", int, 7), ("B", "1.5.", float, 2.5), ("C", "maybe", bool, False), ("D", "{", "json", [])],
)
def test_env__an_unreadable_value_keeps_its_default_and_is_recorded(
    variable: str, raw: str, cast: Any, default: Any
) -> None:
    env = Env()
    reader = {int: env.int, float: env.float, bool: env.bool, "json": env.json}[cast]

    with _environment(variable, raw):
        value = reader(variable, default=default)

    assert value == default
    assert list(env.unreadable) == [variable]
    assert env.unreadable[variable].startswith(f"{variable}={raw!r} ")


def test_env__a_value_starting_with_a_dollar_is_taken_as_written() -> None:
    env = Env()

    with _environment("CRON_SECRET_UNDER_TEST", "$ecret"):
        assert env.str("CRON_SECRET_UNDER_TEST", default="") == "$ecret"


class _environment:
    def __init__(self, name: str, value: str) -> None:
        self.name, self.value = name, value

    def __enter__(self) -> None:
        os.environ[self.name] = self.value

    def __exit__(self, *exc: object) -> None:
        del os.environ[self.name]


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("errors", "check_id"),
    [
        ({"JOBS_BATCH_SIZE": "JOBS_BATCH_SIZE='abc' is not a whole number"}, "orchestrator.E008"),
        ({"SECRET_KEY": "SECRET_KEY is set but empty"}, "orchestrator.E007"),
        (
            {"BACKGROUND_JOBS_INNGEST_PERCENT": "BACKGROUND_JOBS_INNGEST_PERCENT='5%' is not a whole number"},
            "orchestrator.E005",
        ),
        ({"CRON_JOBS": "CRON_JOBS='[' is not valid JSON"}, "dispatch.E001"),
    ],
)
def test_cron__refuses_to_dispatch_while_a_value_is_unreadable(
    client: Client, settings: Any, errors: dict[str, str], check_id: str
) -> None:
    settings.DEBUG = False
    settings.CRON_SECRET = "s"
    settings.ENVIRONMENT_ERRORS = errors

    response = client.get("/api/cron/background-jobs", HTTP_AUTHORIZATION="Bearer s")

    assert (response.status_code, response.json()["checks"]) == (503, [check_id])
