"""Factories for the report's tests: windows and runs with known latencies and outcomes."""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Iterator
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
        return DispatchWindow.objects.create(
            window_start=created_at, requested_at=created_at, created_at=created_at, updated_at=created_at, **fields
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
        return FunctionRun.objects.create(**fields)

    return make


class _CurrentStdout:
    """A stream that writes to whatever sys.stdout is when a line is written (the test's capture)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture
def stdout_log_lines(capsys: pytest.CaptureFixture[str]) -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """Return a reader of the JSON log lines the service printed on stdout.

    The `stdout` handler of settings.LOGGING took hold of the sys.stdout of Django's
    set-up; let that same handler (its JSON formatter, its context filter) write to
    the stdout that capsys captures instead.
    """
    handler = next(handler for handler in logging.getLogger().handlers if handler.name == "stdout")
    assert isinstance(handler, logging.StreamHandler)
    previous = handler.setStream(_CurrentStdout())

    def read() -> list[dict[str, Any]]:
        return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]

    yield read
    if previous is not None:
        handler.setStream(previous)
