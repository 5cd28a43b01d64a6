"""Bad configuration is a check, never a traceback: settings keep a safe value, a check says what to set."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from core.environment import Env
from testsupport.procs import ROOT, run_manage

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
        (
            {"DATABASE_URL": ""},
            "(orchestrator.E008) DATABASE_URL is not a database URL such as postgres://user:password@host:5432/name",
        ),
        ({"DATABASE_URL": "foo://hunter2@db/orders"}, "DATABASE_URL is not a database URL"),
        (
            {"REDIS_URL": "hunter2@localhost:6379"},
            "(orchestrator.E008) REDIS_URL is not a Redis URL such as redis://host:6379/0: status blobs are kept in "
            "each process's memory until it is fixed.",
        ),
        (
            {"WINDOWS_RETENTION_DAYS": "0"},
            "(orchestrator.E008) WINDOWS_RETENTION_DAYS='0' is less than 2: its default is used until it is fixed.",
        ),
        ({"RUNS_RETENTION_DAYS": "-1"}, "RUNS_RETENTION_DAYS='-1' is less than 2"),
        ({"JOBS_BATCH_SIZE": "0"}, "JOBS_BATCH_SIZE='0' is less than 1"),
        ({"INNGEST_PUBLISH_TIMEOUT_SECONDS": "nan"}, "INNGEST_PUBLISH_TIMEOUT_SECONDS='nan' is not a finite number"),
        ({"INNGEST_STEP_BUDGET_SECONDS": "1e400"}, "INNGEST_STEP_BUDGET_SECONDS='1e400' is not a finite number"),
        ({"INLINE_TIME_BUDGET_SECONDS": "0"}, "INLINE_TIME_BUDGET_SECONDS='0' is not more than 0"),
        (
            {"DEBUG": "fasle"},
            "(orchestrator.E008) DEBUG='fasle' is neither true nor false: DEBUG is off until it is fixed (an "
            "unreadable DEBUG fails closed).",
        ),
    ],
    ids=[
        "canary",
        "cron-jobs-json",
        "cron-jobs-object",
        "empty-secret",
        "batch-size",
        "flag",
        "budget",
        "database",
        "database-empty",
        "database-scheme",
        "redis-scheme",
        "window-retention",
        "run-retention",
        "batch-size-zero",
        "timeout-nan",
        "budget-infinite",
        "budget-zero",
        "debug",
    ],
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


@pytest.mark.parametrize(
    ("raw", "bounds", "why"),
    [
        ("0", {"minimum": 1}, "is less than 1"),
        ("-0.5", {"minimum": 0}, "is less than 0"),
        ("0", {"above": 0}, "is not more than 0"),
        ("inf", {}, "is not a finite number"),
        ("-inf", {"minimum": 0}, "is not a finite number"),
    ],
)
def test_env__a_number_out_of_its_range_keeps_its_default_and_is_recorded(
    raw: str, bounds: dict[str, float], why: str
) -> None:
    env = Env()

    with _environment("BOUNDED_UNDER_TEST", raw):
        value = env.float("BOUNDED_UNDER_TEST", default=2.5, **bounds)

    assert (value, env.unreadable) == (2.5, {"BOUNDED_UNDER_TEST": f"BOUNDED_UNDER_TEST={raw!r} {why}"})


def test_env__a_number_in_its_range_is_taken() -> None:
    env = Env()

    with _environment("BOUNDED_UNDER_TEST", "1"):
        assert (env.int("BOUNDED_UNDER_TEST", default=5, minimum=1), env.unreadable) == (1, {})


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


def settings_probe(script: str, **variables: str) -> Any:
    """Run `script` (which prints JSON) in a process whose settings read `variables` over the bare defaults."""
    env = {key: value for key, value in os.environ.items() if key not in BARE}
    env.update(DJANGO_SETTINGS_MODULE="orchestrator.settings", LOG_LEVEL="CRITICAL", **variables)
    done = subprocess.run(
        [sys.executable, "-c", "import django, json; django.setup(); " + script],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])  # (the web process logs on stdout above it)


def test_health__an_unreadable_database_url_is_a_503_json_not_a_500() -> None:
    status, body = settings_probe(
        "from django.test import Client; r = Client(HTTP_HOST='127.0.0.1').get('/api/health'); "
        "print(json.dumps([r.status_code, r.json()]))",
        DATABASE_URL="",
    )

    assert status == 503
    assert body["database"] == {"ok": False, "vendor": "unknown", "error": "unreachable (ImproperlyConfigured)"}


@pytest.mark.parametrize("raw", ["", " "])
def test_dispatch_flag__an_empty_value_means_auto_as_unset_does(raw: str) -> None:
    flags, errors = settings_probe(
        "from django.conf import settings as s; print(json.dumps([s.DISPATCH_FLAGS, s.ENVIRONMENT_ERRORS]))",
        BACKGROUND_JOBS_USE_INNGEST=raw,
        CRON_NIGHTLY_USE_INNGEST="false",
    )

    assert (flags, errors) == ({"CRON_NIGHTLY_USE_INNGEST": False}, {})


@pytest.mark.parametrize(("raw", "dev"), [("off", False), ("no", False), ("0", False), ("1", True), ("on", True)])
def test_inngest_dev__a_false_word_is_not_dev_mode(raw: str, dev: bool) -> None:
    assert (
        settings_probe(
            "from core.inngest import current_config; print(json.dumps(current_config().dev_mode))", INNGEST_DEV=raw
        )
        is dev
    )
