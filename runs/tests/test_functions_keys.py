"""The functions' dispatch keys: none, another job's, one no tick makes, or a window that has not started is refused,
never claimed."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from dispatch import keys
from dispatch.models import DispatchWindow
from runs import views
from runs.models import DeadLetter, FunctionRun
from runs.tests.test_functions import PROCESS, enqueue, event
from testsupport.executor import Executor
from testsupport.models import CronRun, HandlerRun

pytestmark = pytest.mark.django_db(transaction=True)


def test_payload_without_dispatch_key__is_refused_without_retries(executor: Executor) -> None:
    [run] = executor.deliver(event("cron/counter.requested", key=None))

    assert run.status == "failed"
    assert run.requests == 1
    assert run.error is not None
    assert run.error["name"] == "NonRetriableError"
    assert not CronRun.objects.exists()
    row = FunctionRun.objects.get()
    assert (row.dispatch_key, row.status, row.terminal_reason) == (
        f"invalid:{run.run_id}",
        "failed",
        "non-retriable error: invalid payload",
    )
    assert DeadLetter.objects.count() == 1


@pytest.mark.parametrize(
    ("name", "key", "problem"),
    [
        (PROCESS, "cron:background-jobs:2099-01-01T00:00", "names a window that has not started yet"),
        ("background/maintenance.requested", "cron:background-jobs:2099-01-01T00:00", "has not started yet"),
        (PROCESS, "cron:counter:2026-03-14T15:05", "is not a key of cron job 'background-jobs'"),
        ("cron/counter.requested", "cron:counter:someday", "names no window"),
        # Keys no tick makes, which would run a window a second time beside its tick's key.
        ("cron/counter.requested", "cron:counter:2026-03-14T12:03", "where no window of cron job 'counter' starts"),
        ("cron/counter.requested", "cron:counter:2026-03-14T12:05:again-1", "which no tick makes"),
        (PROCESS, "cron:background-jobs:2026-03-14T12:05:again-1", "which no tick makes"),
    ],
)
def test_window_function__refuses_a_future_foreign_or_made_up_window_without_claiming_it(
    executor: Executor, name: str, key: str, problem: str
) -> None:
    enqueue(1)

    [run] = executor.deliver(event(name, key))

    assert (run.status, run.requests) == ("failed", 1)  # refused at once, never retried
    assert run.error is not None
    assert run.error["name"] == "NonRetriableError"
    assert problem in run.error["message"]
    assert HandlerRun.objects.count() == 0
    assert not CronRun.objects.exists()
    # The named window stays free for its real run: the refusal is recorded under the run's own key.
    assert not FunctionRun.objects.filter(dispatch_key=key).exists()
    row = FunctionRun.objects.get()
    assert (row.dispatch_key, row.status, row.terminal_reason) == (
        f"invalid:{run.run_id}",
        "failed",
        "non-retriable error: invalid payload",
    )
    letter = DeadLetter.objects.get()
    assert (letter.dispatch_key, letter.function_run_id) == (f"invalid:{run.run_id}", row.pk)
    [failure] = [r for r in executor.runs if r.function_id.endswith("-failure")]
    assert (failure.status, failure.output) == ("completed", {"deadLetter": letter.pk})  # on_failure found it


def test_window_function__runs_the_next_window_early(executor: Executor) -> None:
    day = 86400
    key = keys.dispatch_key("daily", keys.window_start(timezone.now(), day) + timedelta(seconds=day))

    [run] = executor.deliver(event("cron/daily.requested", key))

    assert run.status == "completed"
    assert CronRun.objects.get().dispatch_key == key
    assert FunctionRun.objects.get().dispatch_key == key


@pytest.fixture
def rescheduled(settings: Any) -> Iterator[None]:
    """`counter`, on 5-minute windows in the suite's settings, deployed on an hourly calendar in Berlin time."""
    settings.CRON_JOBS = [
        {
            "name": "counter",
            "schedule": "0 * * * *",
            "timezone": "Europe/Berlin",
            "callable": "testsupport.crons.count_run",
        }
    ]
    views._handler.cache_clear()  # the functions are built once per process: as a deploy's new processes build them
    yield
    views._handler.cache_clear()


def test_window_function__runs_a_window_a_tick_claimed_under_the_jobs_earlier_schedule(
    rescheduled: None, executor: Executor
) -> None:
    """An event in flight, retried or re-published when the job's schedule changes names a window its tick claimed."""
    start = keys.window_start(timezone.now(), 3600) - timedelta(minutes=10)  # a 5-minute window, on no hour
    claimed = keys.dispatch_key("counter", start)
    DispatchWindow.objects.create(
        dispatch_key=claimed, job="counter", status="enqueued", mode="dispatch", source="cron", correlation_id="t",
        window_start=start, window_seconds=300, requested_at=start,
    )  # fmt: skip

    [run] = executor.deliver(event("cron/counter.requested", claimed))
    [made_up] = executor.deliver(
        event("cron/counter.requested", keys.dispatch_key("counter", start - timedelta(minutes=5)))
    )

    assert run.status == "completed"
    assert CronRun.objects.get().dispatch_key == claimed
    assert made_up.status == "failed"  # a key of the old schedule no tick claimed is still one no tick makes
    assert made_up.error is not None
    assert "where no window of cron job 'counter' starts" in made_up.error["message"]
    assert DeadLetter.objects.count() == 1
