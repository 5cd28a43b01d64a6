from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from dispatch.calendar import Calendar
from dispatch.exceptions import InvalidParam, RegistryError
from dispatch.registry import BACKGROUND_JOBS, cron_jobs, get_cron_job
from dispatch.timetable import CalendarWindows, FixedWindows

COUNTER = "testsupport.crons.count_run"


def test_cron_jobs__background_jobs_is_built_in(settings: Any) -> None:
    settings.CRON_JOBS = []

    job = cron_jobs()[BACKGROUND_JOBS]

    assert job.timetable == FixedWindows(seconds=60)
    assert set(job.events) == {"background/process.requested", "background/maintenance.requested"}
    assert [unit.function_id for unit in job.units] == ["background-maintenance", "process-background-jobs"]
    assert job.flag_name == "BACKGROUND_JOBS_USE_INNGEST"


def test_cron_jobs__extra_jobs_from_settings() -> None:
    job = get_cron_job("counter")

    assert job is not None
    assert (job.timetable, job.events) == (FixedWindows(seconds=300), ("cron/counter.requested",))
    assert [unit.function_id for unit in job.units] == ["cron-counter"]
    assert job.flag_name == "CRON_COUNTER_USE_INNGEST"
    assert set(job.params) == {"tenant", "limit", "dry", "region"}


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("counter", "must be a dict"),
        ({"name": "Bad Name", "window_seconds": 60, "callable": COUNTER}, "name 'Bad Name' must match"),
        ({"name": "x", "window_seconds": 90, "callable": COUNTER}, "window_seconds=90 must be whole minutes"),
        ({"name": "x", "window_seconds": 420, "callable": COUNTER}, "window_seconds=420 must be whole minutes"),
        ({"name": "x", "window_seconds": 30, "callable": COUNTER}, "at least 60"),
        ({"name": "x", "window_seconds": "60", "callable": COUNTER}, "must be an integer"),
        ({"name": "x", "window_seconds": 60, "callable": "no.such.module"}, "cannot import callable"),
        ({"name": "x", "window_seconds": 60, "callable": "django.conf.settings"}, "is not callable"),
        ({"name": "x", "window_seconds": 60, "callable": COUNTER, "every": 1}, "unknown keys ['every']"),
        ({"name": BACKGROUND_JOBS, "window_seconds": 60, "callable": COUNTER}, "already registered"),
        (
            {"name": "x", "window_seconds": 60, "callable": COUNTER, "params": {"n": {"type": "float"}}},
            "param n has type 'float'",
        ),
        ({"name": "x", "window_seconds": 60, "callable": COUNTER, "params": {"1n": {}}}, "param name '1n'"),
        (
            {"name": "x", "window_seconds": 60, "callable": COUNTER, "catch_up": "sometimes"},
            "x: catch_up='sometimes' must be one of skip, latest, all",
        ),
        (
            {"name": "x", "window_seconds": 60, "callable": COUNTER, "catch_up": "all", "catch_up_max": 0},
            "x: catch_up_max=0 must be a whole number, 1 to 1000",
        ),
        (
            {"name": "x", "window_seconds": 60, "callable": COUNTER, "catch_up_max": "10"},
            "x: catch_up_max='10' must be a whole number",
        ),
        ({"name": "x", "window_seconds": 60, "callable": COUNTER, "catch_up_max": True}, "catch_up_max=True must be"),
    ],
)
def test_cron_jobs__a_bad_entry_fails_with_what_to_fix(settings: Any, entry: object, message: str) -> None:
    settings.CRON_JOBS = [entry]

    with pytest.raises(RegistryError, match=message.replace("[", r"\[").replace("]", r"\]")):
        cron_jobs()


def test_check__fails_on_a_bad_registry(settings: Any) -> None:
    settings.CRON_JOBS = [{"name": "x", "window_seconds": 90, "callable": COUNTER}]

    with pytest.raises(SystemCheckError, match="dispatch.E001"):
        call_command("check")


@pytest.mark.parametrize(
    ("path", "error"),
    [
        ("no_such_module.run", "ModuleNotFoundError: No module named 'no_such_module'"),
        (
            "core.errors.no_such_callable",
            'ImportError: Module "core.errors" does not define a "no_such_callable" attribute/class',
        ),  # fmt: skip
        ("raises_on_import_p1c.run", "RuntimeError: the job's module cannot load without FEED_URL"),
        ("syntax_error_p1c.run", "SyntaxError: invalid syntax (syntax_error_p1c.py, line 1)"),
    ],
)
def test_check__a_callable_that_cannot_be_imported_is_an_error_naming_the_job(
    settings: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, path: str, error: str
) -> None:
    (tmp_path / "raises_on_import_p1c.py").write_text(
        'raise RuntimeError("the job\'s module cannot load without FEED_URL")\n'
    )
    (tmp_path / "syntax_error_p1c.py").write_text("def run(:\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    settings.CRON_JOBS = [
        {"name": "fine", "window_seconds": 60, "callable": COUNTER},
        {"name": "feed", "window_seconds": 300, "callable": path},
    ]

    messages = [message for message in run_checks() if message.id and message.id.startswith("dispatch.")]

    assert [(message.id, message.msg) for message in messages] == [
        (
            "dispatch.E002",
            f"A cron job's callable cannot be imported: CRON_JOBS[1]: feed: cannot import callable {path!r}: {error}",
        )
    ]
    with pytest.raises(RegistryError, match="CRON_JOBS\\[1\\]: feed: cannot import callable"):
        cron_jobs()  # what a request or a command meets: the registry's error, not the import's traceback


def test_check__an_unimportable_callable_and_a_bad_entry_are_two_errors(settings: Any) -> None:
    settings.CRON_JOBS = [
        {"name": "feed", "window_seconds": 300, "callable": "no_such_module.run"},
        {"name": "x", "window_seconds": 90, "callable": COUNTER},
    ]

    messages = [message for message in run_checks() if message.id and message.id.startswith("dispatch.")]

    assert [message.id for message in messages] == ["dispatch.E002", "dispatch.E001"]
    assert messages[1].msg == (
        "Invalid cron registry: CRON_JOBS[1]: x: window_seconds=90 must be whole minutes that divide a day"
    )


def test_cron_jobs__catch_up_is_skip_unless_set(settings: Any) -> None:
    settings.CRON_JOBS = [
        {"name": "hourly", "window_seconds": 3600, "callable": COUNTER, "catch_up": "all", "catch_up_max": 3},
        {"name": "plain", "window_seconds": 60, "callable": COUNTER},
    ]

    jobs = cron_jobs()

    assert [(name, job.catch_up, job.catch_up_max) for name, job in jobs.items()] == [
        (BACKGROUND_JOBS, "skip", 10),
        ("hourly", "all", 3),
        ("plain", "skip", 10),
    ]


def test_check__names_the_entry_with_a_bad_catch_up_policy(settings: Any) -> None:
    settings.CRON_JOBS = [{"name": "x", "window_seconds": 60, "callable": COUNTER, "catch_up": "everything"}]

    with pytest.raises(SystemCheckError, match=r"dispatch.E001.*CRON_JOBS\[0\]: x: catch_up='everything'"):
        call_command("check")


def test_cron_jobs__a_calendar_job_takes_a_schedule_in_a_time_zone(settings: Any) -> None:
    settings.CRON_JOBS = [
        {"name": "report", "schedule": "0 9 * * 1-5", "timezone": "Europe/Berlin", "callable": COUNTER},
        {"name": "nightly", "schedule": "30 2 * * *", "callable": COUNTER, "tolerance_seconds": 120},
    ]

    report, nightly = cron_jobs()["report"], cron_jobs()["nightly"]

    assert report.timetable == CalendarWindows(calendar=Calendar("0 9 * * 1-5", "Europe/Berlin"))
    assert (report.timetable.schedule, report.timetable.timezone, report.timetable.tolerance) == (
        "0 9 * * 1-5",
        "Europe/Berlin",
        timedelta(seconds=30),
    )
    assert (nightly.timetable.timezone, nightly.timetable.tolerance) == ("UTC", timedelta(seconds=120))


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"schedule": "0 9 * *"}, "report: schedule '0 9 * *' must have five fields"),
        ({"schedule": "0 25 * * *"}, "report: schedule '0 25 * * *' is not a cron expression: Bad hour"),
        ({"schedule": "0 9 * * 1-5", "timezone": "Europe/Berln"}, "report: timezone 'Europe/Berln' is not a known"),
        ({"schedule": "0 9 * * 1-5", "window_seconds": 60}, "report: give either window_seconds or schedule, not both"),
        ({"schedule": "0 0 31 2 *"}, "report: schedule '0 0 31 2 *' never fires"),
        ({"schedule": 900}, "report: schedule must be a cron expression"),
        ({"window_seconds": 300, "timezone": "Europe/Berlin"}, "report: timezone applies to a schedule"),
        (
            {"schedule": "*/5 * * * *", "tolerance_seconds": 200},
            "report: tolerance_seconds=200 is more than half the shortest time between two fire times",
        ),
        ({"window_seconds": 300, "tolerance_seconds": 151}, "report: tolerance_seconds must be at most half"),
        ({"schedule": "0 9 * * *", "tolerance_seconds": -1}, "report: tolerance_seconds=-1 must be a whole number"),
        ({}, "report: window_seconds must be an integer number of seconds, at least 60 (or give a schedule)"),
    ],
)
def test_check__a_bad_schedule_is_an_error_naming_the_job(
    settings: Any, entry: dict[str, object], message: str
) -> None:
    settings.CRON_JOBS = [{"name": "report", "callable": COUNTER, **entry}]

    with pytest.raises(SystemCheckError, match=r"dispatch\.E001.*CRON_JOBS\[0\]: " + re.escape(message)):
        call_command("check")


def test_check__a_tolerance_up_to_half_the_shortest_interval_passes(settings: Any) -> None:
    # Fire times 10 minutes apart at the closest (02:50 and 03:00, any day): up to 300 s is fine.
    settings.CRON_JOBS = [{"name": "report", "callable": COUNTER, "schedule": "50 2,3 * * *", "tolerance_seconds": 300}]

    call_command("check")


def test_check__passes_on_a_good_registry() -> None:
    call_command("check")


@pytest.mark.parametrize(
    ("query", "params"),
    [
        ({}, {}),
        (
            {"tenant": "acme", "limit": "10", "dry": "true", "region": "eu"},
            {
                "tenant": "acme",
                "limit": 10,
                "dry": True,
                "region": "eu",
            },
        ),
        ({"dry": "0", "limit": "-3"}, {"dry": False, "limit": -3}),
    ],
)
def test_parse_params__types_the_values(query: dict[str, str], params: dict[str, object]) -> None:
    job = get_cron_job("counter")
    assert job is not None

    assert job.parse_params(query) == params


@pytest.mark.parametrize(
    ("query", "name", "reason"),
    [
        ({"limit": "ten"}, "limit", "must be an integer"),
        ({"dry": "maybe"}, "dry", "must be true or false"),
        ({"region": "mars"}, "region", "must be one of: eu, us"),
        ({"tenant": "x" * 201}, "tenant", "longer than 200 characters"),
        ({"tenant": "a\nb"}, "tenant", "must be printable text"),
        ({"other": "1"}, "other", "is not accepted by counter (accepted: tenant, limit, dry, region)"),
    ],
)
def test_parse_params__names_the_bad_param(query: dict[str, str], name: str, reason: str) -> None:
    job = get_cron_job("counter")
    assert job is not None

    with pytest.raises(InvalidParam) as caught:
        job.parse_params(query)

    assert (caught.value.name, caught.value.reason) == (name, reason)


def test_parse_params__background_jobs_takes_none() -> None:
    job = get_cron_job(BACKGROUND_JOBS)
    assert job is not None

    with pytest.raises(InvalidParam, match="accepted: none"):
        job.parse_params({"x": "1"})


def test_only__narrows_a_job_to_one_function() -> None:
    job = get_cron_job(BACKGROUND_JOBS)
    assert job is not None

    narrowed = job.only("process-background-jobs")

    assert (narrowed.name, narrowed.events) == (BACKGROUND_JOBS, ("background/process.requested",))
    with pytest.raises(LookupError, match="has no function 'nope'"):
        job.only("nope")


def test_job_of_function__finds_the_owning_job() -> None:
    from dispatch.registry import job_of_function

    found = job_of_function("background-maintenance")

    assert found is not None and found.name == BACKGROUND_JOBS
    assert job_of_function("cron-counter") == get_cron_job("counter")
    assert job_of_function("unknown") is None
