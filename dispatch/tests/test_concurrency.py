from __future__ import annotations

import pytest

from dispatch.models import DispatchWindow
from testsupport import procs
from testsupport.models import CronRun

PROCESSES = 5
THREADS = 10  # per process: 50 concurrent ticks of one window


@pytest.mark.django_db(transaction=True)
def test_concurrent_ticks_of_one_window__one_row_and_one_inline_run() -> None:
    storms = [
        procs.python_module("testsupport.tick_storm", "counter", "2026-03-14T15:07:00Z", str(THREADS))
        for _ in range(PROCESSES)
    ]
    results = procs.release_together(storms, timeout=120)

    assert len(results) == PROCESSES * THREADS
    assert {result["status"] for result in results} == {200}
    assert sum(not result["body"]["duplicate"] for result in results) == 1
    assert {result["body"]["dispatchKey"] for result in results} == {"cron:counter:2026-03-14T15:05"}
    window = DispatchWindow.objects.get()
    assert (window.status, window.duplicate_ticks) == ("inline", PROCESSES * THREADS - 1)
    assert CronRun.objects.count() == 1
