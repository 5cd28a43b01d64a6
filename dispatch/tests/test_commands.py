from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from freezegun import freeze_time

from dispatch.models import DispatchWindow
from testsupport.models import CronRun

pytestmark = pytest.mark.django_db


def run(*args: str) -> dict[str, object]:
    out = StringIO()
    call_command("dispatch_tick", *args, "--json", stdout=out)
    body: dict[str, object] = json.loads(out.getvalue())
    return body


def test_dispatch_tick__defaults_to_background_jobs_as_a_manual_tick() -> None:
    body = run()

    assert (body["job"], body["mode"], body["duplicate"]) == ("background-jobs", "inline", False)
    assert DispatchWindow.objects.get().source == "manual"


@freeze_time("2026-01-01T10:09:26Z")
def test_dispatch_tick__at_and_params() -> None:
    body = run("counter", "--at", "2026-01-01T10:07:00Z", "--param", "tenant=acme")

    assert body["dispatchKey"] == "cron:counter:2026-01-01T10:05"
    assert CronRun.objects.get().params == {"tenant": "acme"}


def test_dispatch_tick__inline_is_an_emergency_tick() -> None:
    body = run("counter", "--inline")

    assert body["mode"] == "inline-forced"
    assert DispatchWindow.objects.get().source == "emergency"


@freeze_time("2026-01-01T10:09:26Z")
def test_dispatch_tick__force_runs_a_second_time_in_the_window() -> None:
    run("counter", "--at", "2026-01-01T10:07:00Z")
    again = run("counter", "--at", "2026-01-01T10:07:00Z")
    forced = run("counter", "--at", "2026-01-01T10:07:00Z", "--force")

    assert (again["duplicate"], forced["duplicate"]) == (True, False)
    assert CronRun.objects.count() == 2


def test_dispatch_tick__exits_1_when_the_run_crashes() -> None:
    with pytest.raises(SystemExit) as caught:
        call_command("dispatch_tick", "crash", "--json", stdout=StringIO())

    assert caught.value.code == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "unknown cron job 'nope'; registered: background-jobs, counter, crash"),
        (["counter", "--at", "noon"], "--at: 'noon' is not an ISO-8601 date-time"),
        (["counter", "--at", "2026-01-01T10:00:00"], "has no UTC offset"),
        (["counter", "--at", "2099-01-01T00:00:00Z"], "--at: the window 2099-01-01T00:00 has not started yet"),
        (["counter", "--at", "2099-01-01T00:00:00Z", "--inline", "--force"], "has not started yet"),
        (["counter", "--param", "tenant"], "write it as NAME=VALUE"),
        (["counter", "--param", "limit=x"], "--param: param 'limit' must be an integer"),
    ],
)
def test_dispatch_tick__bad_arguments_say_what_to_type(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        call_command("dispatch_tick", *args)
    assert not DispatchWindow.objects.exists()


@freeze_time("2026-03-14T15:09:26Z")
def test_dispatch_tick__at_a_window_older_than_the_retention_is_refused_unless_forced(settings: Any) -> None:
    settings.WINDOWS_RETENTION_DAYS = 30
    with pytest.raises(CommandError) as refused:
        call_command("dispatch_tick", "counter", "--at", "2026-02-11T15:00:00Z")  # 31 days ago
    assert not DispatchWindow.objects.exists()

    forced = run("counter", "--at", "2026-02-11T15:00:00Z", "--force")
    kept = run("counter", "--at", "2026-02-13T15:00:00Z")  # 29 days ago: its row would still be there

    assert str(refused.value) == (
        "--at: the window 2026-02-11T15:00 is older than WINDOWS_RETENTION_DAYS=30: the ledger no longer records "
        "whether it ran, so ticking it could run it twice. Add --force to run it again on purpose under a one-off "
        "key, or leave --at out to tick the current window"
    )
    assert str(forced["dispatchKey"]).startswith("cron:counter:2026-02-11T15:00:manual-")
    assert kept["dispatchKey"] == "cron:counter:2026-02-13T15:00"


@freeze_time("2026-03-14T15:09:26Z")  # the command reads the clock itself: the next window of counter is 15:10
def test_dispatch_tick__at_the_next_window_is_refused_unless_forced() -> None:
    with pytest.raises(CommandError) as refused:
        call_command("dispatch_tick", "counter", "--at", "2026-03-14T15:11:00Z")
    assert not DispatchWindow.objects.exists()

    forced = run("counter", "--at", "2026-03-14T15:11:00Z", "--force")
    past = run("counter", "--at", "2026-03-14T13:00:00Z")

    assert str(refused.value) == (
        "--at: the window 2026-03-14T15:10 starts after the current one (2026-03-14T15:05): claimed now, its real "
        "tick would run nothing. Tick the current or a past window, or add --force to run the next one now under a "
        "one-off key"
    )
    assert str(forced["dispatchKey"]).startswith("cron:counter:2026-03-14T15:10:manual-")
    assert past["dispatchKey"] == "cron:counter:2026-03-14T13:00"
    assert CronRun.objects.count() == 2
