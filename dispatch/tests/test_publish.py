"""Dispatch mode against the loopback event API: the real SDK client, every failure shape."""

from __future__ import annotations

import json
import signal
from datetime import datetime, timedelta
from io import StringIO
from typing import Any

import pytest
from django.core.management import call_command
from django.db.models import F
from django.utils import timezone

from dispatch.keys import canary_bucket
from dispatch.models import DispatchWindow
from dispatch.registry import get_cron_job
from dispatch.services import TickResult, dispatch_tick
from testsupport import procs
from testsupport.event_api import EventAPI
from testsupport.models import CronRun

pytestmark = pytest.mark.django_db

PROCESS = "background/process.requested"
MAINTENANCE = "background/maintenance.requested"


def tick(now: datetime, job: str = "background-jobs", **kwargs: Any) -> TickResult:
    cron_job = get_cron_job(job)
    assert cron_job is not None
    kwargs.setdefault("source", "cron")
    kwargs.setdefault("correlation_id", "corr-7")
    return dispatch_tick(job=cron_job, now=now, **kwargs)


def test_dispatch__publishes_deterministic_events_and_answers_202(event_api: EventAPI, now: datetime) -> None:
    result = tick(now)

    key = "cron:background-jobs:2026-03-14T15:09"
    assert result.status_code == 202
    assert result.body["mode"] == "dispatch"
    assert (result.body["enqueued"], result.body["duplicate"]) == (True, False)
    assert sorted(result.body["eventIds"]) == sorted([f"{MAINTENANCE}:{key}", f"{PROCESS}:{key}"])
    assert "summary" not in result.body
    assert sorted(event_api.event_ids()) == sorted(result.body["eventIds"])
    for event in event_api.events:
        assert event["data"] == {
            "source": "cron",
            "requestedAt": "2026-03-14T15:09:26.500Z",
            "dispatchKey": key,
            "correlationId": "corr-7",
            "dispatchWindowStart": "2026-03-14T15:09:00.000Z",
            "dispatchWindowSeconds": 60,
        }
    window = DispatchWindow.objects.get()
    assert (window.status, window.mode, window.publish_attempts, window.error) == ("enqueued", "dispatch", 1, "")
    assert window.event_ids == result.body["eventIds"]


def test_dispatch__params_travel_only_for_jobs_that_declare_them(event_api: EventAPI, now: datetime) -> None:
    tick(now, "counter", params={"tenant": "acme", "limit": 3})

    [event] = event_api.events
    assert event["name"] == "cron/counter.requested"
    assert event["id"] == "cron/counter.requested:cron:counter:2026-03-14T15:05"
    assert event["data"]["params"] == {"tenant": "acme", "limit": 3}


def test_dispatch__a_second_tick_publishes_nothing(event_api: EventAPI, now: datetime) -> None:
    first = tick(now)
    second = tick(now + timedelta(seconds=30))

    assert second.status_code == 200
    assert (second.body["mode"], second.body["duplicate"], second.body["enqueued"]) == ("dispatch", True, True)
    assert second.body["eventIds"] == first.body["eventIds"]
    assert event_api.requests == 1
    assert DispatchWindow.objects.get().duplicate_ticks == 1


@pytest.mark.parametrize(
    ("behaviour", "error"),
    [
        ("hang", "publish timed out after 0.5 s"),
        ("error500", "publish timed out after 0.5 s"),
        ("html", "event API answered with an unreadable body"),
        ("unauthorized", "event API refused the events: SendEventsError: Event key not found"),
    ],
)
def test_dispatch__each_failure_shape_is_503_dispatch_failed(
    event_api: EventAPI, now: datetime, behaviour: Any, error: str
) -> None:
    event_api.behave(behaviour)

    result = tick(now)

    assert result.status_code == 503
    assert (result.body["mode"], result.body["enqueued"], result.body["duplicate"]) == ("dispatch-failed", False, False)
    assert result.body["error"].startswith(error)
    assert "\n" not in result.body["error"]
    assert len(result.body["eventIds"]) == 2
    window = DispatchWindow.objects.get()
    assert (window.status, window.mode, window.error) == ("dispatch_failed", "dispatch", result.body["error"])
    assert window.latency_ms is not None


def test_dispatch__the_sdk_retries_a_500_within_the_bound(event_api: EventAPI, now: datetime, settings: Any) -> None:
    settings.INNGEST_PUBLISH_TIMEOUT_SECONDS = 1.2
    event_api.behave("error500")

    result = tick(now)

    assert result.status_code == 503
    assert event_api.requests >= 3  # the SDK's own retries ran, inside the one bound


def test_dispatch__the_next_tick_republishes_the_same_event_ids(event_api: EventAPI, now: datetime) -> None:
    event_api.behave("error500")
    failed = tick(now)
    event_api.behave("ok")

    retried = tick(now + timedelta(seconds=20), correlation_id="corr-8")

    assert (failed.status_code, retried.status_code) == (503, 202)
    assert retried.body["duplicate"] is False
    assert retried.body["eventIds"] == failed.body["eventIds"]
    assert sorted(event_api.event_ids()) == sorted(failed.body["eventIds"])
    window = DispatchWindow.objects.get()
    assert (window.status, window.publish_attempts, window.correlation_id, window.error) == (
        "enqueued",
        2,
        "corr-8",
        "",
    )


@pytest.mark.parametrize(
    ("until", "active"),
    [("2026-03-14T16:00:00Z", True), ("2026-03-14T15:00:00Z", False), ("", False), ("not a date", False)],
)
def test_dispatch__emergency_fallback_runs_inline_only_until_its_deadline(
    event_api: EventAPI, now: datetime, settings: Any, caplog: Any, until: str, active: bool
) -> None:
    settings.BACKGROUND_JOBS_INLINE_EMERGENCY_FALLBACK = True
    settings.BACKGROUND_JOBS_INLINE_EMERGENCY_FALLBACK_UNTIL = until
    event_api.behave("error500")

    result = tick(now, "counter")

    if active:
        assert result.status_code == 200
        assert result.body["mode"] == "inline-fallback"
        assert result.body["error"].startswith("publish timed out")
        assert result.body["summary"]["cron-counter"]["cronRunId"] == CronRun.objects.get().pk
        window = DispatchWindow.objects.get()
        assert (window.status, window.mode) == ("inline", "inline-fallback")
    else:
        assert result.status_code == 503
        assert result.body["mode"] == "dispatch-failed"
        assert not CronRun.objects.exists()
        assert "emergency inline fallback is on but inactive" in caplog.text


def test_dispatch__flag_false_is_the_rollback_lever(event_api: EventAPI, now: datetime, settings: Any) -> None:
    settings.DISPATCH_FLAGS = {"BACKGROUND_JOBS_USE_INNGEST": False}

    result = tick(now)

    assert (result.status_code, result.body["mode"]) == (200, "inline")
    assert event_api.requests == 0


def test_dispatch__flag_is_per_job(event_api: EventAPI, now: datetime, settings: Any) -> None:
    settings.DISPATCH_FLAGS = {"CRON_COUNTER_USE_INNGEST": False}

    assert tick(now, "counter").body["mode"] == "inline"
    assert tick(now).body["mode"] == "dispatch"


def test_dispatch__unset_flag_follows_publishing_configuration(now: datetime, settings: Any) -> None:
    settings.INNGEST_EVENT_KEY = ""
    settings.INNGEST_DEV = ""

    assert tick(now).body["mode"] == "inline"


def test_dispatch__flag_true_without_an_event_key_fails_clearly(now: datetime, settings: Any) -> None:
    settings.INNGEST_EVENT_KEY = ""
    settings.INNGEST_DEV = ""
    settings.DISPATCH_FLAGS = {"BACKGROUND_JOBS_USE_INNGEST": True}

    result = tick(now)

    assert result.status_code == 503
    assert result.body["error"] == "no event key: set INNGEST_EVENT_KEY (or INNGEST_DEV for the dev server)"


@pytest.mark.parametrize("percent", [0, 30, 100])
def test_dispatch__canary_dispatches_a_deterministic_share_of_windows(
    event_api: EventAPI, now: datetime, settings: Any, percent: int
) -> None:
    settings.BACKGROUND_JOBS_INNGEST_PERCENT = percent
    start = now.replace(second=0, microsecond=0)

    modes = {}
    for minute in range(40):
        result = tick(start + timedelta(minutes=minute))
        modes[result.body["dispatchKey"]] = result.body["mode"]

    expected = {key: "dispatch" if canary_bucket(key) < percent else "inline" for key in modes}
    assert modes == expected
    if percent == 30:
        assert 0 < list(modes.values()).count("dispatch") < 40


def test_dispatch_tick_command__json_shows_dispatch(event_api: EventAPI) -> None:
    out = StringIO()

    call_command("dispatch_tick", "--json", stdout=out)

    body = json.loads(out.getvalue())
    assert (body["mode"], body["enqueued"]) == ("dispatch", True)
    assert DispatchWindow.objects.get().source == "manual"


@pytest.mark.django_db(transaction=True)
def test_dispatch__a_crash_between_claim_and_publish_is_completed_by_a_later_tick(
    event_api: EventAPI, settings: Any
) -> None:
    event_api.behave("hang")
    at = timezone.now().isoformat()
    child = procs.manage(
        "dispatch_tick",
        "--at",
        at,
        "--json",
        env=procs.child_env(
            INNGEST_EVENT_KEY=settings.INNGEST_EVENT_KEY,
            INNGEST_EVENT_API_BASE_URL=event_api.url,
            INNGEST_PUBLISH_TIMEOUT_SECONDS="30",
        ),
    )
    assert event_api.wait_for_request(timeout=60), child.communicate()
    child.send_signal(signal.SIGKILL)  # the tick dies between its claim and the publish's answer
    child.communicate(timeout=30)
    window = DispatchWindow.objects.get()
    assert window.status == "pending"
    event_api.behave("ok")
    settings.INNGEST_PUBLISH_TIMEOUT_SECONDS = 30  # as the dead tick's: stale 60 s after its claim

    too_soon = tick(timezone.now(), at=datetime.fromisoformat(at))
    # The stale bound passes on the database's clock: moved back rather than waited for.
    DispatchWindow.objects.filter(pk=window.pk).update(updated_at=F("updated_at") - timedelta(seconds=61))
    later = tick(timezone.now(), at=datetime.fromisoformat(at))

    assert too_soon.body["duplicate"] is True  # the pending tick might still be publishing
    assert (later.status_code, later.body["duplicate"]) == (202, False)
    window.refresh_from_db()
    assert (window.status, window.publish_attempts) == ("enqueued", 2)


def test_dispatch__a_narrowed_job_publishes_only_its_function(event_api: EventAPI, now: datetime) -> None:
    job = get_cron_job("background-jobs")
    assert job is not None

    result = dispatch_tick(
        job=job.only("process-background-jobs"), now=now, source="manual", correlation_id="c", force=True
    )

    assert result.status_code == 202
    [event] = event_api.events
    assert event["name"] == PROCESS
    assert event["data"]["dispatchKey"].startswith("cron:background-jobs:2026-03-14T15:09:manual-")
