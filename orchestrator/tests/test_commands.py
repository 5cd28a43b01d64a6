from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import DEFAULT_DB_ALIAS, connections
from freezegun import freeze_time

from dispatch.models import DispatchWindow
from orchestrator.management.commands.orchestrator_report import _amount
from runs.models import FunctionRun

pytestmark = pytest.mark.django_db


def report(now: datetime, *args: str) -> tuple[int, str]:
    """Run orchestrator_report at `now`; return its exit code and output."""
    out = StringIO()
    with freeze_time(now):
        try:
            call_command("orchestrator_report", *args, stdout=out)
        except SystemExit as exit_:
            return int(str(exit_.code)), out.getvalue()
    return 0, out.getvalue()


def test_orchestrator_report__exits_0_and_says_pass_when_every_gate_holds(
    now: datetime, make_window: Callable[..., DispatchWindow]
) -> None:
    make_window(latency_ms=40)

    code, text = report(now)

    assert code == 0
    lines = text.splitlines()
    assert lines[0] == "SLO report for 2026-03-13T15:09:26.500Z .. 2026-03-14T15:09:26.500Z (24h)"
    assert lines[-1] == "PASS: every gate holds."
    p95 = next(line for line in lines if line.startswith("dispatch latency p95"))
    assert p95.split()[3:] == ["40", "ms", "<=", "2,000", "ms", "pass"]


def test_orchestrator_report__exits_1_and_names_the_crossed_gate(
    now: datetime, make_run: Callable[..., FunctionRun], make_window: Callable[..., DispatchWindow]
) -> None:
    make_run(dispatch_key="cron:background-jobs:2026-03-14T15:00")
    make_run(dispatch_key="cron:background-jobs:2026-03-14T15:00:again-1")  # a key no tick makes ran it again
    make_window(publish_attempts=2)

    code, text = report(now)

    assert code == 1
    lines = text.splitlines()
    duplicates = next(line for line in lines if line.startswith("duplicate runs per window"))
    failures = next(line for line in lines if line.startswith("enqueue-failure rate"))
    assert duplicates.split()[4:] == ["1", "run", "<=", "0", "runs", "FAIL"]
    assert failures.split()[2:] == ["50.00%", "<=", "1.00%", "FAIL"]
    assert text.splitlines()[-1].startswith("FAIL: enqueue-failure rate, duplicate runs per window crossed the gate.")


def test_orchestrator_report__a_forced_rerun_of_a_window_that_ran_is_reported_not_a_crossed_gate(
    now: datetime,
) -> None:
    with freeze_time(now):
        call_command("dispatch_tick", "counter", "--json", stdout=StringIO())
        call_command("dispatch_tick", "counter", "--force", "--json", stdout=StringIO())  # the same window again

    code, text = report(now)

    assert FunctionRun.objects.filter(function_id="cron-counter", status="succeeded").count() == 2
    assert code == 0, text
    lines = text.splitlines()
    manual = next(line for line in lines if line.startswith("manual re-runs of a window"))
    duplicates = next(line for line in lines if line.startswith("duplicate runs per window"))
    assert manual.split()[5:] == ["1", "run", "-", "info"]
    assert duplicates.split()[4:] == ["0", "runs", "<=", "0", "runs", "pass"]
    assert lines[-1] == "PASS: every gate holds."


def test_orchestrator_report__json_and_since(now: datetime, make_window: Callable[..., DispatchWindow]) -> None:
    make_window(latency_ms=3000, created_at=now - timedelta(minutes=20))  # Inside 24h, outside 15m.
    make_window(latency_ms=30, created_at=now - timedelta(minutes=10))

    day_code, day = report(now, "--json")
    quarter_code, quarter = report(now, "--json", "--since", "15m")

    assert (day_code, json.loads(day)["failed"]) == (1, ["dispatchLatencyP95Ms"])
    body = json.loads(quarter)
    assert (quarter_code, body["pass"], body["period"]) == (0, True, "15m")
    assert body["since"] == "2026-03-14T14:54:26.500Z"
    assert body["metrics"]["dispatchLatencyP95Ms"]["value"] == 30


@pytest.mark.parametrize("since", ["24", "yesterday", "15 m", "0d", "1000d"])
def test_orchestrator_report__a_bad_since_says_what_to_type(since: str) -> None:
    with pytest.raises(CommandError, match=r"^--since: '.*' is ") as refused:
        call_command("orchestrator_report", "--since", since)

    assert refused.value.returncode == 2  # not 1: a bad argument is no crossed gate


def test_orchestrator_report__an_unreachable_database_exits_2_not_1(
    closed_port: int, settings: Any, django_db_blocker: Any
) -> None:
    real = connections[DEFAULT_DB_ALIAS]
    connections[DEFAULT_DB_ALIAS] = type(real)({**real.settings_dict, "PORT": str(closed_port)}, DEFAULT_DB_ALIAS)
    try:
        with pytest.raises(CommandError, match=r"^cannot read the ledger: ") as refused:
            call_command("orchestrator_report")
    finally:
        connections[DEFAULT_DB_ALIAS].close()
        connections[DEFAULT_DB_ALIAS] = real

    assert refused.value.returncode == 2


@pytest.mark.parametrize(
    ("number", "unit", "text"),
    [
        (1, "jobs", "1 job"),
        (2, "jobs", "2 jobs"),
        (1, "letters", "1 letter"),
        (0, "runs", "0 runs"),
        (12_345, "jobs", "12,345 jobs"),
        (1_234.5, "s", "1,234.5 s"),
        (0.496, "s", "0.496 s"),
        (-1.3224, "s", "-1.322 s"),
        (0.0377, "ratio", "3.77%"),
    ],
)
def test_orchestrator_report__amounts_read_as_an_operator_writes_them(number: float, unit: str, text: str) -> None:
    assert _amount(number, unit) == text
