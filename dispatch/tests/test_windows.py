"""The window's claim and its fence: staleness on the database's clock, a superseded tick never writes.

A window is presumed abandoned when it sat `pending` past its stale bound; tests
make a window look stale by moving its row's `updated_at` back, never by waiting.
"""

from __future__ import annotations

import json
import subprocess
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db.models import F
from django.utils import timezone

from conftest import EVENT_KEY
from core.timefmt import iso_utc
from dispatch import services
from dispatch.hooks import inline_run
from dispatch.models import DispatchWindow
from dispatch.registry import get_cron_job
from dispatch.services import dispatch_tick
from dispatch.windows import stale_after, window_claim
from runs.models import FunctionRun
from testsupport import procs
from testsupport.event_api import EventAPI
from testsupport.models import CronRun

PROCESS = "background/process.requested"
MAINTENANCE = "background/maintenance.requested"


def claim(*, now: datetime, correlation_id: str, mode: str = "dispatch") -> Any:
    return window_claim(
        dispatch_key="cron:counter:2026-03-14T15:05",
        job="counter",
        window_start=datetime.fromisoformat("2026-03-14T15:05:00+00:00"),
        window_seconds=300,
        mode=mode,
        source="cron",
        correlation_id=correlation_id,
        event_ids=["cron/counter.requested:cron:counter:2026-03-14T15:05"] if mode == "dispatch" else [],
        now=now,
    )


@pytest.mark.django_db
def test_window_claim__staleness_is_judged_on_the_databases_clock_not_the_ticks(settings: Any) -> None:
    """A tick whose `now` was read long before its claim (a slow connect) still holds a fresh claim."""
    settings.INNGEST_PUBLISH_TIMEOUT_SECONDS = 1.5
    late = timezone.now() - timedelta(minutes=10)

    first = claim(now=late, correlation_id="slow-tick")
    second = claim(now=timezone.now(), correlation_id="next-tick")

    assert (first.won, second.won) == (True, False)
    window = DispatchWindow.objects.get()
    assert (window.status, window.correlation_id, window.publish_attempts, window.duplicate_ticks) == (
        "pending",
        "slow-tick",
        1,
        1,
    )
    assert window.requested_at == late  # the tick's own time is kept; the claim's stamp is the database's


@pytest.mark.django_db
def test_window_claim__a_window_pending_past_its_bound_is_reclaimed_once(settings: Any) -> None:
    settings.INNGEST_PUBLISH_TIMEOUT_SECONDS = 1.5
    claim(now=timezone.now(), correlation_id="dead-tick")
    DispatchWindow.objects.update(updated_at=F("updated_at") - timedelta(seconds=3.1))

    taken = claim(now=timezone.now(), correlation_id="second")
    again = claim(now=timezone.now(), correlation_id="third")

    assert (taken.won, again.won) == (True, False)
    assert taken.window.claim == 2
    window = DispatchWindow.objects.get()
    assert (window.correlation_id, window.claim, window.publish_attempts, window.duplicate_ticks) == (
        "second",
        2,
        2,
        1,
    )


@pytest.mark.django_db
def test_dispatch_tick__the_fence_costs_no_round_trip(event_api: EventAPI, django_assert_num_queries: Any) -> None:
    """The hot path stays as benchmarked: a fresh dispatch claims and closes, a duplicate counts; one statement each."""
    job = get_cron_job("background-jobs")
    assert job is not None
    at = timezone.now()

    with django_assert_num_queries(2):
        fresh = dispatch_tick(job=job, now=timezone.now(), at=at, source="cron", correlation_id="fresh")
    with django_assert_num_queries(1):
        duplicate = dispatch_tick(job=job, now=timezone.now(), at=at, source="cron", correlation_id="again")

    assert (fresh.status_code, duplicate.status_code, duplicate.body["duplicate"]) == (202, 200, True)


@pytest.mark.django_db
def test_window_close__an_inline_tick_superseded_after_its_run_answers_what_it_ran(
    now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An inline run outlives its stale bound; a later tick re-claims the window; the first tick then closes."""
    job = get_cron_job("counter")
    assert job is not None
    later: list[Any] = []

    def run_then_get_superseded(**kwargs: Any) -> Any:
        result = inline_run(**kwargs)  # tick A's units run...
        if kwargs["ctx"].correlation_id == "tick-a":  # ... past the stale bound (moved back, not waited for)
            DispatchWindow.objects.update(updated_at=F("updated_at") - stale_after("inline") - timedelta(seconds=1))
            later.append(dispatch_tick(job=job, now=now, source="cron", correlation_id="tick-b"))  # B re-claims
        return result

    monkeypatch.setattr(services, "inline_run", run_then_get_superseded)

    first = dispatch_tick(job=job, now=now, source="cron", correlation_id="tick-a")

    # A did the work, once, and says so; B found its runs taken (the run ledger) and owns the window.
    assert (first.status_code, first.body["duplicate"]) == (200, False)
    assert first.body["summary"] == {"cron-counter": {"cronRunId": CronRun.objects.get().pk, "params": {}}}
    [second] = later
    assert (second.status_code, second.body["summary"]) == (200, {"cron-counter": {"skipped": "duplicate-window"}})
    window = DispatchWindow.objects.get()
    assert (window.status, window.correlation_id, window.claim) == ("inline", "tick-b", 2)


def tick_a(event_api: EventAPI, at: datetime, **env: str) -> subprocess.Popen[str]:
    """Start tick A: `manage.py dispatch_tick --at`, publishing to `event_api` within a 60 s bound."""
    return procs.manage(
        "dispatch_tick",
        "--at",
        iso_utc(at),
        "--json",
        env=procs.child_env(
            INNGEST_EVENT_KEY=EVENT_KEY,
            INNGEST_EVENT_API_BASE_URL=event_api.url,
            INNGEST_PUBLISH_TIMEOUT_SECONDS="60",  # stale after 120 s: only the test makes it look so
            **env,
        ),
    )


@pytest.mark.parametrize("fallback", [False, True])
@pytest.mark.django_db(transaction=True)
def test_window_close__a_superseded_ticks_late_failure_leaves_the_newer_ticks_window_alone(
    event_api: EventAPI, settings: Any, fallback: bool
) -> None:
    """Tick A's publish outlives the stale bound; tick B re-claims and enqueues; then A's publish fails.

    A must not close the window `dispatch_failed` over B's `enqueued` (nor, with the
    emergency fallback on, switch it to inline and run the work a second time): it
    answers as the duplicate it has become.
    """
    settings.INNGEST_PUBLISH_TIMEOUT_SECONDS = 60.0
    until = (timezone.now() + timedelta(hours=1)).isoformat()
    fallback_env = {"BACKGROUND_JOBS_INLINE_EMERGENCY_FALLBACK": "true"} if fallback else {}
    job = get_cron_job("background-jobs")
    assert job is not None
    at = timezone.now()  # both ticks tick this window, whatever minute they run in
    event_api.behave("hold")
    a = tick_a(event_api, at, BACKGROUND_JOBS_INLINE_EMERGENCY_FALLBACK_UNTIL=until, **fallback_env)
    assert event_api.wait_for_held(timeout=60), a.communicate()  # A claimed the window and is publishing
    DispatchWindow.objects.update(updated_at=F("updated_at") - timedelta(seconds=121))  # ... for too long
    event_api.behave("ok")

    b = dispatch_tick(job=job, now=timezone.now(), at=at, source="cron", correlation_id="tick-b")
    event_api.release_held("unauthorized")  # A's publish fails, after B's succeeded
    out, err = a.communicate(timeout=60)

    assert (b.status_code, b.body["mode"], b.body["duplicate"], b.body["enqueued"]) == (202, "dispatch", False, True)
    assert a.returncode == 0, err
    a_body = json.loads(out)  # the command's answer; its logs are on stderr
    lines = [json.loads(line) for line in err.splitlines()]
    assert (a_body["duplicate"], a_body["enqueued"], a_body["mode"]) == (True, True, "dispatch")
    assert a_body["eventIds"] == b.body["eventIds"]
    assert "error" not in a_body
    [why] = [line for line in lines if line.get("action") == "window_close"]  # and A says why
    assert (why["message"], why["claim"], why["latestClaim"]) == (
        "window re-claimed by a later tick: answering as a duplicate",
        1,
        2,
    )
    window = DispatchWindow.objects.get()
    assert (window.status, window.mode, window.correlation_id, window.error) == ("enqueued", "dispatch", "tick-b", "")
    assert (window.claim, window.publish_attempts) == (2, 2)
    key = b.body["dispatchKey"]
    assert sorted(event_api.event_ids()) == [f"{MAINTENANCE}:{key}", f"{PROCESS}:{key}"]  # B's, once
    assert not FunctionRun.objects.exists()  # nothing ran inline
