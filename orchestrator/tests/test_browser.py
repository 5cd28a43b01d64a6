"""The operator's triage walk-through in a real browser: Debian's chromium, driven by Playwright, on a live server.

Chromium must be installed (`apt-get install -y chromium`; `.ci/run` does it): without
it this test fails rather than skips, so a CI machine without a browser cannot pass
quietly. `ORCHESTRATOR_SKIP_BROWSER=1` skips it on purpose. Playwright never downloads
a browser here: it drives the system's chromium through `executable_path`.

Every page is seen at 1400 px wide. The screenshots land in `artefacts/`: the health panel
(`admin-dashboard.png`), the dead letters after triage (`admin-dead-letters.png`), the Cron jobs
page (`admin-cron-jobs.png`, and with a calendar job `admin-cron-jobs-calendar.png`) and a back-fill's
list (`admin-cron-backfill.png`); test_browser_fit.py adds grouping by cause and every changelist.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import Page, expect, sync_playwright

from core.display import when
from core.timefmt import iso_utc
from dispatch import keys
from dispatch.models import CronJobState, DispatchWindow
from dispatch.registry import get_cron_job
from dispatch.timetable import next_starts
from jobs.models import BackgroundJob, QueueHealthSnapshot
from runs.models import DeadLetter, FunctionRun
from testsupport.admin import STAFF_PASSWORD

CHROMIUM = Path(os.environ.get("ORCHESTRATOR_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTEFACTS = Path(settings.BASE_DIR) / "artefacts"
WIDTH = 1400  # every changelist fits a 1400 px screen
COUNT_RUN = "testsupport.crons.count_run"
OPERATOR_PERMISSIONS = (
    "dispatch.view_dispatchwindow",
    "runs.view_functionrun",
    "runs.view_functionrunattempt",
    "runs.view_deadletter",
    "runs.triage_deadletter",
    "jobs.view_backgroundjob",
    "jobs.view_queuehealthsnapshot",
)


@contextmanager
def chromium() -> Iterator[Page]:
    """Yield a page of a headless chromium (the system's own); fail when it is missing."""
    if os.environ.get("ORCHESTRATOR_SKIP_BROWSER") == "1":
        pytest.skip("ORCHESTRATOR_SKIP_BROWSER=1: the browser walk-through is skipped on purpose")
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium), or set "
            "ORCHESTRATOR_SKIP_BROWSER=1 to skip the browser test on purpose"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": 900})
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


def a_day_of_history(now: datetime) -> None:
    """Fill the last 24 hours with what a busy day looks like: a window a minute, runs, snapshots."""
    windows, runs, snapshots = [], [], []
    for minute in range(0, 24 * 60, 6):
        at = (now - timedelta(minutes=minute)).replace(second=0, microsecond=0)  # a window starts on its minute
        failed = minute % 150 == 0
        inline = 600 <= minute < 720  # two hours of rollback: inline ticks
        mode = "inline" if inline else "dispatch"  # a failed publish keeps mode dispatch
        key = f"cron:background-jobs:{at:%Y-%m-%dT%H:%M}"
        windows.append(
            DispatchWindow(
                dispatch_key=key, job="background-jobs", mode=mode, source="cron", correlation_id=f"c{minute}",
                status="dispatch_failed" if failed else "inline" if inline else "enqueued",
                window_start=at, window_seconds=60, requested_at=at, created_at=at, updated_at=at,
                latency_ms=None if inline else 3 + minute % 7, publish_attempts=0 if inline else 1,
                duplicate_ticks=minute % 4 == 0,
            )
        )  # fmt: skip
        if not failed:
            status = "failed" if minute % 210 == 0 else "succeeded"
            runs.append(
                FunctionRun(
                    function_id="process-background-jobs", dispatch_key=key, run_id=f"r{minute}", status=status,
                    window_start=at, started_at=at, finished_at=at, duration_ms=40 + minute % 90,
                    terminal_reason="retries exhausted" if status == "failed" else "",
                )
            )  # fmt: skip
        backlog = max(0, 30 - abs(minute - 480) // 8)
        snapshots.append(
            QueueHealthSnapshot(
                taken_at=at, pending=backlog, ready=backlog, running=1, dead=0, lag_seconds=backlog * 2.0,
                unresolved_dead_letters=0,
            )
        )  # fmt: skip
    DispatchWindow.objects.bulk_create(windows)
    FunctionRun.objects.bulk_create(runs)
    QueueHealthSnapshot.objects.bulk_create(snapshots)


@pytest.fixture
def triage_floor(
    make_staff: Callable[..., User],
    make_job_letter: Callable[..., DeadLetter],
    make_run_letter: Callable[..., DeadLetter],
) -> dict[str, Any]:
    now = timezone.now()
    a_day_of_history(now)
    return {
        "operator": make_staff("operator", *OPERATOR_PERMISSIONS),
        "job_letter": make_job_letter(tenant="acme", payload={"invoice": 7}, created_at=now - timedelta(hours=3)),
        "run_letter": make_run_letter(created_at=now - timedelta(hours=2)),
        "noted_letter": make_job_letter("test.fail", created_at=now - timedelta(hours=1)),
        "old_letter": make_job_letter(
            created_at=now - timedelta(days=2), resolution="resolved", resolved_at=now, note="seen before"
        ),
    }


def test_admin_triage_walkthrough__requeue_two_resolve_one_then_the_dashboard(
    live_server: Any, triage_floor: dict[str, Any]
) -> None:
    job_letter, run_letter = triage_floor["job_letter"], triage_floor["run_letter"]
    noted, old = triage_floor["noted_letter"], triage_floor["old_letter"]
    ARTEFACTS.mkdir(exist_ok=True)
    note = "Known upstream outage 14:00-14:40; invoice re-sent by hand."

    # The browser runs its own event loop on this thread: the database is read before and after it, not during.
    with chromium() as page:
        page.goto(f"{live_server.url}/admin/login/?next=/admin/")
        page.fill("#id_username", "operator")
        page.fill("#id_password", STAFF_PASSWORD)
        page.click("input[type=submit]")
        expect(page.locator("#orch-health h2")).to_have_text("Health: the last 24 hours")

        page.click("a:text-is('Dead letters')")
        page.click("#changelist-filter a:text-is('Unresolved')")
        expect(page).to_have_url(re.compile(r"/admin/runs/deadletter/\?state=unresolved$"))
        rows = page.locator("#result_list tbody tr")
        expect(rows).to_have_count(3)
        expect(page.locator("#result_list")).not_to_contain_text(f"#{old.pk}")

        page.check(f"input[name=_selected_action][value='{job_letter.pk}']")
        page.check(f"input[name=_selected_action][value='{run_letter.pk}']")
        page.select_option("select[name=action]", "requeue")
        page.click("button[name=index]")
        expect(page.locator("ul.messagelist li")).to_have_text("Requeued 2 dead letters.")
        expect(rows).to_have_count(1)  # the list is still "unresolved": only the third letter is left

        page.check(f"input[name=_selected_action][value='{noted.pk}']")
        page.select_option("select[name=action]", "resolve")
        page.click("button[name=index]")
        expect(page.locator("h1")).to_have_text("Resolve dead letters")
        page.fill("#id_note", note)
        page.click("input[type=submit][value='Resolve 1 dead letter']")
        expect(page.locator("ul.messagelist li")).to_have_text("Resolved 1 dead letter.")
        expect(page.locator("p.paginator")).to_contain_text("0 dead letters")

        page.click("#changelist-filter a:text-is('Requeued')")
        expect(rows).to_have_count(2)
        requeued = page.locator("#result_list tbody").inner_text()
        page.screenshot(path=str(ARTEFACTS / "admin-dead-letters.png"), full_page=True)

        page.click("a:text-is('Home')")
        panel = page.locator("#orch-health")
        expect(panel.locator(".orch-tile", has_text="Unresolved dead letters")).to_contain_text("0")
        expect(panel.locator("svg.orch-chart rect").first).to_be_visible()
        chart_bars = panel.locator("svg.orch-chart rect").count()
        page.screenshot(path=str(ARTEFACTS / "admin-dashboard.png"), full_page=True)

    assert "requeued" in requeued and f"job #{job_letter.job_id}" in requeued and "window · run" in requeued
    assert chart_bars > 24  # every hour of the day has its two stacked bars
    assert (ARTEFACTS / "admin-dashboard.png").stat().st_size > 10_000
    operator = triage_floor["operator"]
    job_letter.refresh_from_db()
    fresh = job_letter.requeued_job
    assert (job_letter.resolution, job_letter.resolved_by) == ("requeued", operator)
    assert fresh is not None
    assert (fresh.kind, fresh.tenant, fresh.payload, fresh.status) == ("test.record", "acme", {"invoice": 7}, "pending")
    run_letter.refresh_from_db()
    assert (run_letter.resolution, run_letter.resolved_by) == ("requeued", operator)
    window = DispatchWindow.objects.get(dispatch_key=run_letter.requeued_dispatch_key)
    assert (window.job, window.source, window.mode) == ("counter", "manual", "inline")
    noted.refresh_from_db()
    assert (noted.resolution, noted.note, noted.resolved_by) == ("resolved", note, operator)
    old.refresh_from_db()
    assert (old.resolution, old.note) == ("resolved", "seen before")
    assert BackgroundJob.objects.filter(status="pending").count() == 1


def test_cron_jobs_walkthrough__pause_a_job_with_a_note_its_tick_is_paused_then_resume_it(
    live_server: Any, make_staff: Callable[..., User], settings: Any
) -> None:
    settings.CRON_SECRET = "browser-cron-secret"
    make_staff("operator", "dispatch.view_cronjobstate", "dispatch.view_dispatchwindow", "runs.triage_deadletter")
    ARTEFACTS.mkdir(exist_ok=True)
    note = "Supplier API down until 16:00 (INC-42)."

    with chromium() as page:
        page.goto(f"{live_server.url}/admin/login/?next=/admin/")
        page.fill("#id_username", "operator")
        page.fill("#id_password", STAFF_PASSWORD)
        page.click("input[type=submit]")
        page.click("a:text-is('Cron jobs')")
        expect(page.locator("h1")).to_have_text("Cron jobs")
        row = page.locator("#cron-job-counter")
        expect(row).to_contain_text("active")

        row.locator("a:text-is('Pause…')").click()
        expect(page.locator("h1")).to_have_text("Pause counter")
        page.fill("#id_note", note)
        page.click("input[type=submit][value='Pause counter']")
        expect(page.locator("ul.messagelist li")).to_have_text(
            "Paused counter: its ticks record their windows as paused until it is resumed."
        )
        expect(row).to_contain_text("paused by operator")
        expect(row).to_contain_text(note)

        tick = httpx.get(
            f"{live_server.url}/api/cron/counter", headers={"Authorization": "Bearer browser-cron-secret"}, timeout=30
        )
        page.reload()
        expect(row.locator(".orch-badge--warn").first).to_have_text("paused")  # the last window's outcome
        page.screenshot(path=str(ARTEFACTS / "admin-cron-jobs.png"), full_page=True)

        row.locator("button:text-is('Resume')").click()
        expect(page.locator("ul.messagelist li")).to_have_text("Resumed counter: its next tick runs.")
        expect(row).to_contain_text("active")
        expect(row).to_contain_text("resumed by operator")

    assert (tick.status_code, tick.json()["mode"]) == (200, "paused")
    window = DispatchWindow.objects.get(job="counter")
    assert (window.status, window.mode, window.source) == ("paused", "paused", "cron")
    state = CronJobState.objects.get(job="counter")
    assert (state.paused, state.pause_note) == (False, note)
    assert state.paused_by is not None and state.resumed_by is not None
    assert (state.paused_by.get_username(), state.resumed_by.get_username()) == ("operator", "operator")
    assert [entry.change_message for entry in LogEntry.objects.order_by("pk")] == [f"Paused: {note}", "Resumed."]


def test_cron_jobs_walkthrough__a_calendar_job_in_words_then_a_backfill_listed_and_run(
    live_server: Any, make_staff: Callable[..., User], settings: Any
) -> None:
    settings.CRON_JOBS = [
        {"name": "report", "schedule": "0 9 * * 1-5", "timezone": "Europe/Berlin", "callable": COUNT_RUN},
        {"name": "counter", "window_seconds": 300, "callable": COUNT_RUN},
    ]
    make_staff("operator", "dispatch.view_cronjobstate", "dispatch.view_dispatchwindow", "runs.triage_deadletter")
    ARTEFACTS.mkdir(exist_ok=True)
    start = keys.window_start(timezone.now(), 300) - timedelta(minutes=30)
    for offset, status, mode, source in ((0, "enqueued", "dispatch", "cron"), (5, "missed", "", "reconciler")):
        at = start + timedelta(minutes=offset)
        DispatchWindow.objects.create(
            dispatch_key=keys.dispatch_key("counter", at), job="counter", status=status, mode=mode, source=source,
            correlation_id="c", window_start=at, window_seconds=300, requested_at=at, lateness_ms=1_200,
        )  # fmt: skip
    report = get_cron_job("report")
    assert report is not None
    fires = next_starts(report.timetable, now=timezone.now(), count=3)

    with chromium() as page:
        page.goto(f"{live_server.url}/admin/login/?next=/admin/dispatch/cronjobstate/")
        page.fill("#id_username", "operator")
        page.fill("#id_password", STAFF_PASSWORD)
        page.click("input[type=submit]")
        row = page.locator("#cron-job-report")
        expect(row.locator(".orch-cron-schedule")).to_contain_text("At 09:00, Monday through Friday, Europe/Berlin")
        expect(row.locator(".orch-cron-next div")).to_have_text([when(fire) for fire in fires])
        expect(page.locator("#cron-job-counter .orch-cron-lateness")).to_contain_text("1.2 s / p95 1.2 s")
        page.screenshot(path=str(ARTEFACTS / "admin-cron-jobs-calendar.png"), full_page=True)

        page.locator("#cron-job-counter a:text-is('Back-fill…')").click()
        expect(page.locator("h1")).to_have_text("Back-fill counter")
        page.fill("#id_first", iso_utc(start))
        page.fill("#id_last", iso_utc(start + timedelta(minutes=10)))
        page.click("input[name=preview]")
        plan = page.locator("#backfill-plan tbody tr")
        expect(plan).to_have_count(3)
        expect(plan.nth(0)).to_contain_text("skipped: handled")
        expect(plan.nth(1)).to_contain_text("missed")
        page.screenshot(path=str(ARTEFACTS / "admin-cron-backfill.png"), full_page=True)
        page.click("input[name=run][value='Run 2 windows']")
        expect(page.locator("ul.messagelist li")).to_contain_text("Back-filled counter: 2 of 3 windows")

    ran = DispatchWindow.objects.filter(job="counter").exclude(window_start=start).order_by("window_start")
    assert list(ran.values_list("status", "source", "reclaimed_by")) == [
        ("inline", "reconciler", "manual"),
        ("inline", "manual", ""),
    ]
