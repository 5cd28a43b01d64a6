"""Back-filling a range: `dispatch_tick JOB --from T1 --to T2 [--dry-run]`, past windows only, bounded, as ticks."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from freezegun import freeze_time

from dispatch.backfill import MAX_WINDOWS
from dispatch.models import DispatchWindow
from dispatch.registry import get_cron_job
from dispatch.services import dispatch_tick
from testsupport.event_api import EventAPI
from testsupport.models import CronRun

pytestmark = pytest.mark.django_db

NOW = "2026-04-02T12:00:00Z"
COUNT_RUN = "testsupport.crons.count_run"


@pytest.fixture(autouse=True)
def report(settings: Any) -> None:
    settings.CRON_JOBS = [
        {"name": "report", "schedule": "0 9 * * 1-5", "timezone": "Europe/Berlin", "callable": COUNT_RUN},
        {"name": "counter", "window_seconds": 300, "callable": COUNT_RUN},
        {"name": "monthly", "schedule": "0 0 1 * *", "timezone": "Europe/Berlin", "callable": COUNT_RUN},
    ]


def window(key: str, status: str, *, mode: str = "dispatch", source: str = "cron") -> None:
    start = datetime.strptime(key.rsplit(":", 2)[-2] + ":" + key.rsplit(":", 1)[-1], "%Y-%m-%dT%H:%M")
    DispatchWindow.objects.create(
        dispatch_key=key, job=key.split(":")[1], status=status, mode=mode, source=source, correlation_id="c",
        window_start=start.replace(tzinfo=UTC), window_seconds=86_400, requested_at=start.replace(tzinfo=UTC),
    )  # fmt: skip


def backfill(*args: str) -> dict[str, Any]:
    out = StringIO()
    with freeze_time(NOW):
        call_command("dispatch_tick", *args, "--json", stdout=out, stderr=StringIO())
    body: dict[str, Any] = json.loads(out.getvalue())
    return body


def test_backfill__dry_run_lists_the_weekday_windows_and_what_each_would_do() -> None:
    window("cron:report:2026-03-27T08:00", "enqueued")
    window("cron:report:2026-03-30T07:00", "missed", mode="", source="reconciler")

    body = backfill("report", "--from", "2026-03-26T00:00:00Z", "--to", "2026-03-31T23:00:00Z", "--dry-run")

    assert [(w["dispatchKey"], w["status"], w["action"]) for w in body["windows"]] == [
        ("cron:report:2026-03-26T08:00", None, "run"),
        ("cron:report:2026-03-27T08:00", "enqueued", "skip"),
        ("cron:report:2026-03-30T07:00", "missed", "run"),  # nothing ran: an operator's tick runs it
        ("cron:report:2026-03-31T07:00", None, "run"),
    ]
    assert (body["dryRun"], body["ticks"]) == (True, [])
    assert DispatchWindow.objects.count() == 2 and not CronRun.objects.exists()


def test_backfill__runs_each_window_as_a_tick_would_and_skips_those_handled(event_api: EventAPI) -> None:
    window("cron:report:2026-03-27T08:00", "enqueued")
    window("cron:report:2026-03-30T07:00", "missed", mode="", source="reconciler")

    body = backfill("report", "--from", "2026-03-26T00:00:00Z", "--to", "2026-03-31T23:00:00Z")
    again = backfill("report", "--from", "2026-03-26T00:00:00Z", "--to", "2026-03-31T23:00:00Z")

    assert [(tick["dispatchKey"], tick["mode"], tick["duplicate"]) for tick in body["ticks"]] == [
        ("cron:report:2026-03-26T08:00", "dispatch", False),
        ("cron:report:2026-03-30T07:00", "dispatch", False),
        ("cron:report:2026-03-31T07:00", "dispatch", False),
    ]
    assert event_api.event_ids() == [f"cron/report.requested:{tick['dispatchKey']}" for tick in body["ticks"]]
    missed = DispatchWindow.objects.get(dispatch_key="cron:report:2026-03-30T07:00")
    assert (missed.status, missed.source, missed.reclaimed_by) == ("enqueued", "reconciler", "manual")
    assert again["ticks"] == [] and {w["action"] for w in again["windows"]} == {"skip"}


def test_dispatch_tick__an_operators_tick_runs_a_missed_window_a_late_cron_tick_does_not() -> None:
    window("cron:report:2026-03-30T07:00", "missed", mode="", source="reconciler")
    job = get_cron_job("report")
    assert job is not None

    late = dispatch_tick(job=job, now=datetime(2026, 3, 30, 9, tzinfo=UTC), source="cron", correlation_id="late")
    missed = DispatchWindow.objects.values_list("status", "reclaimed_by").get()
    with freeze_time("2026-03-30T09:00:00Z"):
        call_command("dispatch_tick", "report", "--at", "2026-03-30T07:00:00Z", stdout=StringIO(), stderr=StringIO())

    assert (late.body["duplicate"], late.body["mode"], missed) == (True, "missed", ("missed", ""))
    assert DispatchWindow.objects.values_list("status", "source", "reclaimed_by").get() == (
        "inline",
        "reconciler",
        "manual",
    )
    assert CronRun.objects.count() == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-04-02T11:00:00Z", "--to", "2026-04-02T13:00:00Z"], "the range ends in the future"),
        (["--from", "2026-04-02T11:00:00Z", "--to", "2026-04-01T11:00:00Z"], "starts after it ends"),
        (["--from", "2026-04-01T00:00:00Z"], f"more than {MAX_WINDOWS} windows of counter start in that range"),
        (["--from", "yesterday"], "--from: 'yesterday' is not an ISO-8601 date-time"),
        (
            ["--from", "2026-02-01T00:00:00Z", "--to", "2026-02-01T01:00:00Z"],
            "the range's first window (2026-02-01T00:00) is older than WINDOWS_RETENTION_DAYS=30 days",
        ),
        (["--to", "2026-04-01T00:00:00Z"], "give its first window with --from"),
        (["--from", "2026-04-02T11:00:00Z", "--force"], "leave out --at, --force and --inline"),
        (["--from", "2026-04-02T09:00:00Z", "--at", "2026-04-02T10:00:00Z"], "leave out --at, --force and --inline"),
        (["--dry-run"], "give its first window with --from"),
    ],
)
def test_backfill__refuses_a_range_it_cannot_run_saying_what_to_type(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message.replace("(", r"\(").replace(")", r"\)")):
        backfill("counter", *args)
    assert not DispatchWindow.objects.exists()


def test_backfill__to_defaults_to_now_and_a_fixed_windows_range_is_its_window_starts() -> None:
    body = backfill("counter", "--from", "2026-04-02T11:02:00Z", "--dry-run")

    assert [w["windowStart"] for w in body["windows"]][::5] == [
        "2026-04-02T11:05:00.000Z",
        "2026-04-02T11:30:00.000Z",
        "2026-04-02T11:55:00.000Z",
    ]
    assert len(body["windows"]) == 12  # 11:05 .. 12:00


def test_backfill__a_range_without_a_window_says_so() -> None:
    with pytest.raises(CommandError, match=r"no window of report starts in that range \(At 09:00, Monday through"):
        backfill("report", "--from", "2026-03-28T00:00:00Z", "--to", "2026-03-29T23:00:00Z")


def test_backfill__the_retention_applies_to_the_windows_of_the_range_not_to_its_start() -> None:
    """A monthly job's range from 1 March (32 days before now): its one window (1 April, Berlin) is 1 day old."""
    body = backfill("monthly", "--from", "2026-03-01T00:00:00Z", "--dry-run")

    assert [(w["dispatchKey"], w["action"]) for w in body["windows"]] == [("cron:monthly:2026-03-31T22:00", "run")]
    with pytest.raises(CommandError, match=r"first window \(2026-02-28T23:00\) is older than WINDOWS_RETENTION_DAYS"):
        backfill("monthly", "--from", "2026-02-28T00:00:00Z", "--dry-run")
