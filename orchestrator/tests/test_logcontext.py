from __future__ import annotations

import json
from collections.abc import Callable
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone
from freezegun import freeze_time

from core.logcontext import bound_fields, log_context
from jobs.services import job_enqueue

Lines = Callable[[], list[dict[str, Any]]]


def test_log_context__binds_nested_fields_and_skips_empty_ones() -> None:
    with log_context(correlationId="c1", dispatchKey=""), log_context(runId="r1"):
        assert bound_fields() == {"correlationId": "c1", "runId": "r1"}
    assert bound_fields() == {}


@pytest.mark.django_db
def test_cron_tick__every_json_line_on_stdout_carries_the_correlation_id_and_dispatch_key(
    client: Client, settings: Any, stdout_log_lines: Lines
) -> None:
    settings.CRON_SECRET = "s"
    job_enqueue(kind="test.record", payload={}, now=timezone.now())
    stdout_log_lines()  # Drop what the set-up logged.

    response = client.get(
        "/api/cron/background-jobs", headers={"Authorization": "Bearer s", "X-Correlation-Id": "trace-log-7"}
    )

    lines = stdout_log_lines()
    dispatch_key = response.json()["dispatchKey"]
    by_action = {line["action"]: line for line in lines}
    assert {"maintenance", "queue_health", "jobs_run", "dispatch"} <= set(by_action)
    for line in lines:  # Lines logged deep inside the inline run, too.
        assert (line["correlationId"], line["dispatchKey"], line["job"]) == (
            "trace-log-7",
            dispatch_key,
            "background-jobs",
        )
    tick = by_action["dispatch"]
    assert (tick["level"], tick["logger"], tick["message"]) == ("INFO", "dispatch.services", "inline run finished")
    assert (tick["mode"], tick["duplicate"], tick["latencyMs"]) == ("inline", False, response.json()["latencyMs"])
    assert tick["time"].endswith("+00:00")
    assert by_action["jobs_run"]["succeeded"] == 1


@pytest.mark.django_db
def test_dispatch_tick__log_lines_carry_the_printed_correlation_id(stdout_log_lines: Lines) -> None:
    out = StringIO()
    with freeze_time("2026-01-01T10:09:26Z"):
        call_command("dispatch_tick", "counter", "--at", "2026-01-01T10:07:00Z", "--json", stdout=out)

    body = json.loads(out.getvalue())
    lines = stdout_log_lines()
    assert lines
    assert {(line["correlationId"], line["dispatchKey"]) for line in lines} == {
        (body["correlationId"], "cron:counter:2026-01-01T10:05")
    }
