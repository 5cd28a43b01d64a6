"""Factories for the report's tests: windows and runs with known latencies and outcomes."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from itertools import count
from typing import Any

import pytest

from dispatch.models import DispatchWindow
from runs.models import FunctionRun

_serial = count(1)


@pytest.fixture
def make_window(now: datetime) -> Callable[..., DispatchWindow]:
    """Create a dispatch window directly: a settled dispatch at `now` unless told otherwise."""

    def make(**fields: Any) -> DispatchWindow:
        created_at = fields.pop("created_at", now)
        fields.setdefault("dispatch_key", f"cron:background-jobs:w{next(_serial)}")
        fields.setdefault("job", "background-jobs")
        fields.setdefault("status", DispatchWindow.Status.ENQUEUED)
        fields.setdefault("mode", DispatchWindow.Mode.DISPATCH)
        fields.setdefault("source", DispatchWindow.Source.CRON)
        fields.setdefault("correlation_id", "c")
        fields.setdefault("window_seconds", 60)
        dispatched = fields["mode"] in (DispatchWindow.Mode.DISPATCH, DispatchWindow.Mode.DISPATCH_FAILED)
        fields.setdefault("publish_attempts", 1 if dispatched else 0)
        fields.setdefault("window_start", created_at)
        return DispatchWindow.objects.create(
            requested_at=created_at, created_at=created_at, updated_at=created_at, **fields
        )

    return make


@pytest.fixture
def make_run(now: datetime) -> Callable[..., FunctionRun]:
    """Create a function run directly: a success started at `now` unless told otherwise."""

    def make(**fields: Any) -> FunctionRun:
        fields.setdefault("function_id", "process-background-jobs")
        fields.setdefault("dispatch_key", f"cron:background-jobs:r{next(_serial)}")
        fields.setdefault("run_id", f"run-{next(_serial)}")
        fields.setdefault("status", FunctionRun.Status.SUCCEEDED)
        fields.setdefault("started_at", now)
        # As the ledger files a run whose key names no window: at the time it started.
        fields.setdefault("window_start", fields["started_at"])
        return FunctionRun.objects.create(**fields)

    return make


@pytest.fixture
def stdout_log_lines(capsys: pytest.CaptureFixture[str]) -> Callable[[], list[dict[str, Any]]]:
    """Return a reader of the JSON log lines the service printed on stdout (as a web process does).

    The log handler (core.logs.ConsoleHandler) writes to whatever sys.stdout is at each
    line, so capsys captures it.
    """

    def read() -> list[dict[str, Any]]:
        return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]

    return read
