"""The operator's triage walk-through in a real browser: Debian's chromium, driven by Playwright, on a live server.

Chromium must be installed (`apt-get install -y chromium`; `.ci/run` does it): without
it this test fails rather than skips, so a CI machine without a browser cannot pass
quietly. `ORCHESTRATOR_SKIP_BROWSER=1` skips it on purpose. Playwright never downloads
a browser here: it drives the system's chromium through `executable_path`.

Every page is seen at 1400 px wide. The screenshots land in `artefacts/`: the health panel
(`admin-dashboard.png`, the picture in docs/admin.md), the dead letters after triage
(`admin-dead-letters.png`), grouped by cause before and after a group's requeue
(`admin-dead-letters-by-cause.png`, `admin-dead-letters-by-cause-requeued.png`), and every
changelist (`admin-fit-<model>.png`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import User
from django.urls import reverse
from django.utils import timezone
from playwright.sync_api import Page, expect, sync_playwright

from dispatch.models import DispatchWindow
from jobs.models import BackgroundJob, QueueHealthSnapshot
from runs.models import DeadLetter, FunctionRun
from testsupport.admin import STAFF_PASSWORD

CHROMIUM = Path(os.environ.get("ORCHESTRATOR_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
ARTEFACTS = Path(settings.BASE_DIR) / "artefacts"
WIDTH = 1400  # every changelist fits a 1400 px screen
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
        at = now - timedelta(minutes=minute)
        failed = minute % 150 == 0
        inline = 600 <= minute < 720  # two hours of rollback: inline ticks
        mode = "dispatch-failed" if failed else "inline" if inline else "dispatch"
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
                    started_at=at, finished_at=at, duration_ms=40 + minute % 90,
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


# --- Grouping by cause, and every changelist at 1400 px ---------------------------------------------------------

CAUSES = {
    "refused": "ConnectionError: HTTPSConnectionPool(host='api.payments.example.com', port=443): Max retries exceeded "
    "with url: /v2/invoices/{n}/send (Caused by NewConnectionError('Failed to establish a new connection: [Errno "
    "111] Connection refused'))",
    "timeout": "TimeoutError: read timed out after {n}.5 s talking to 10.0.{n}.7:5432",
    "missing": "LookupError: invoice 3f2a9c1d-0b4e-4c7a-9e1f-{n:012d} of tenant acme-corporation-emea not found",
}
LONG_KIND = "billing.tasks.send_invoice_reminder_email_to_the_accounts_payable_contact"
LONG_TENANT = "acme-corporation-emea-north"
# Which rows fit: the page and every table's scroll box no wider than their box, each row one line high.
FIT = """() => {
  const over = [];
  if (document.documentElement.scrollWidth > window.innerWidth) over.push("page");
  for (const box of document.querySelectorAll("#content .results")) {
    if (box.scrollWidth > box.clientWidth + 1) over.push(box.parentElement.id || "results");
  }
  const tall = Array.from(document.querySelectorAll("#result_list tbody tr, #orch-causes tbody tr"))
    .filter(row => row.getBoundingClientRect().height > 44).length;
  return {over, tall};
}"""


def an_incident(now: datetime, make_job_letter: Callable[..., DeadLetter]) -> dict[str, list[DeadLetter]]:
    """Twelve letters of three causes, long kinds, tenants and errors: what an incident leaves."""
    return {
        cause: [
            make_job_letter(
                "test.record" if cause == "refused" else LONG_KIND,  # the cause requeued must be runnable
                tenant=LONG_TENANT,
                payload={"invoice": 100 * index + n},
                error=template.format(n=n),
                created_at=now - timedelta(minutes=10 * n + index),
            )
            for n in range(1, 5)
        ]
        for index, (cause, template) in enumerate(CAUSES.items())
    }


def long_rows(now: datetime) -> None:
    """A row of every ledger whose text is as long as it gets: a manual key, a long kind, tenant and error."""
    key = f"cron:background-jobs:{now:%Y-%m-%dT%H:%M}:manual-0a1b2c3d"
    DispatchWindow.objects.create(
        dispatch_key=key, job="background-jobs", status="dispatch_failed", mode="inline-fallback", source="emergency",
        correlation_id="c" * 64, window_start=now, window_seconds=60, requested_at=now, created_at=now,
        updated_at=now, latency_ms=1499, publish_attempts=12, duplicate_ticks=1234, error=CAUSES["refused"],
    )  # fmt: skip
    FunctionRun.objects.create(
        function_id="cron-nightly-invoice-reconciliation-report", dispatch_key=key, run_id="r" * 100,
        scope=LONG_TENANT, source="emergency", status="failed", attempts=16, started_at=now, finished_at=now,
        duration_ms=3_725_000, terminal_reason="retries exhausted", last_error=CAUSES["refused"],
    )  # fmt: skip
    BackgroundJob.objects.create(
        kind=LONG_KIND, tenant=LONG_TENANT, queue="emails-transactional", status="dead", attempts=100,
        max_attempts=100, priority=-100, run_after=now, created_at=now, started_at=now, finished_at=now,
        last_error=CAUSES["refused"].format(n=1), dedupe_key="d" * 200,
    )  # fmt: skip


def sign_in(page: Page, url: str, username: str) -> None:
    page.goto(f"{url}/admin/login/?next=/admin/")
    page.fill("#id_username", username)
    page.fill("#id_password", STAFF_PASSWORD)
    page.click("input[type=submit]")


def test_admin_grouping_walkthrough__group_by_cause_then_requeue_a_whole_cause(
    live_server: Any, make_staff: Callable[..., User], make_job_letter: Callable[..., DeadLetter]
) -> None:
    now = timezone.now()
    make_staff("operator", *OPERATOR_PERMISSIONS)
    incident = an_incident(now, make_job_letter)
    refused = incident["refused"][0].fingerprint
    ARTEFACTS.mkdir(exist_ok=True)

    with chromium() as page:
        sign_in(page, live_server.url, "operator")
        page.click("a:text-is('Dead letters')")
        page.click("#changelist-filter a:text-is('Unresolved')")
        expect(page.locator("#result_list tbody tr")).to_have_count(12)
        page.click("a:text-is('Group by cause')")
        expect(page.locator("h1")).to_have_text("Dead letters by cause")
        causes = page.locator("#orch-causes tbody tr")
        expect(causes).to_have_count(3)
        expect(causes.first).to_contain_text("4")
        first_fit = page.evaluate(FIT)
        page.screenshot(path=str(ARTEFACTS / "admin-dead-letters-by-cause.png"), full_page=True)

        page.check(f'#orch-causes input[name=_selected_cause][value="{refused}"]')
        page.select_option("select[name=cause_action]", "requeue")
        page.click("#orch-causes-form button[name=index]")
        expect(page.locator("ul.messagelist li")).to_have_text("Requeued 4 dead letters.")
        expect(causes).to_have_count(2)  # still the unresolved letters, by cause: that cause is gone
        page.screenshot(path=str(ARTEFACTS / "admin-dead-letters-by-cause-requeued.png"), full_page=True)

        causes.first.locator("td.orch-cause a").click()
        expect(page.locator("#result_list tbody tr")).to_have_count(4)  # one cause's letters
        expect(page.locator("#changelist-filter")).to_contain_text("By cause")

    assert first_fit == {"over": [], "tall": 0}
    requeued = DeadLetter.objects.filter(fingerprint=refused)
    assert [letter.resolution for letter in requeued] == ["requeued"] * 4
    assert all(letter.requeued_job is not None for letter in requeued)
    assert BackgroundJob.objects.filter(status="pending", kind="test.record").count() == 4
    assert DeadLetter.objects.filter(resolution="").count() == 8


def test_admin_changelists__every_one_fits_1400_px_one_line_a_row(
    live_server: Any, make_staff: Callable[..., User], make_job_letter: Callable[..., DeadLetter]
) -> None:
    now = timezone.now()
    make_staff("root", superuser=True)
    a_day_of_history(now)
    an_incident(now, make_job_letter)
    long_rows(now)
    letter = DeadLetter.objects.order_by("pk").first()
    assert letter is not None
    pages = {
        f"{model._meta.app_label}-{model._meta.model_name}": reverse(
            f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"
        )
        for model in admin.site._registry
        if model._meta.app_label in ("dispatch", "jobs", "runs")
    }
    pages["runs-deadletter-by-cause"] = f"{pages['runs-deadletter']}?group=cause"
    pages["runs-deadletter-page"] = reverse("admin:runs_deadletter_change", args=[letter.pk])
    ARTEFACTS.mkdir(exist_ok=True)
    fits = {}

    with chromium() as page:
        sign_in(page, live_server.url, "root")
        for name, path in pages.items():
            page.goto(f"{live_server.url}{path}")
            fits[name] = page.evaluate(FIT)
            page.screenshot(path=str(ARTEFACTS / f"admin-fit-{name}.png"), full_page=True)

    assert {name for name in pages} >= {"dispatch-dispatchwindow", "jobs-backgroundjob", "runs-functionrun"}
    assert {name: fit for name, fit in fits.items() if fit != {"over": [], "tall": 0}} == {}
