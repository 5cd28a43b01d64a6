"""Grouping dead letters by cause in a real browser (as test_browser.py); the helpers test_browser_widths.py fills
the admin with.

The screenshots land in `artefacts/`: the dead letters grouped by cause before and after a
cause's requeue (`admin-dead-letters-by-cause.png`, `admin-dead-letters-by-cause-requeued.png`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import User
from django.utils import timezone
from playwright.sync_api import Page, expect

from dispatch.models import DispatchWindow
from jobs.models import BackgroundJob
from orchestrator.tests.test_browser import ARTEFACTS, OPERATOR_PERMISSIONS, chromium
from runs.models import DeadLetter, FunctionRun
from testsupport.admin import STAFF_PASSWORD

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
    start = now.replace(second=0, microsecond=0)
    key = f"cron:background-jobs:{start:%Y-%m-%dT%H:%M}:manual-0a1b2c3d"
    DispatchWindow.objects.create(
        dispatch_key=key, job="background-jobs", status="dispatch_failed", mode="inline-fallback", source="emergency",
        correlation_id="c" * 64, window_start=start, window_seconds=60, requested_at=now, created_at=now,
        updated_at=now, latency_ms=1499, publish_attempts=12, duplicate_ticks=1234, error=CAUSES["refused"],
    )  # fmt: skip
    FunctionRun.objects.create(
        function_id="cron-nightly-invoice-reconciliation-report", dispatch_key=key, window_start=start,
        run_id="r" * 100, scope=LONG_TENANT, source="emergency", status="failed", attempts=16, started_at=now,
        finished_at=now, duration_ms=3_725_000, terminal_reason="retries exhausted", last_error=CAUSES["refused"],
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
