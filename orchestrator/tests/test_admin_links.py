"""Every link of every admin page opens: a walk of the admin as an operator with view permissions and as a superuser.

From the index, each same-site link of each page is followed once (a page's own links are read
the first time its path is reached, so a changelist's many filter and sort links are followed
without walking their combinations), and none answers 500, nor 404: every link the admin
shows leads somewhere.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from html.parser import HTMLParser
from typing import Any
from urllib.parse import urljoin, urlsplit

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from dispatch.models import DispatchWindow
from jobs.models import BackgroundJob, QueueHealthSnapshot
from orchestrator.tests.test_browser import OPERATOR_PERMISSIONS
from runs.models import DeadLetter, FunctionRun, FunctionRunAttempt

pytestmark = pytest.mark.django_db

# Following these would act or end the session: the walk signs in once and only reads.
NOT_FOLLOWED = ("/admin/logout/",)


class Links(HTMLParser):
    """The hrefs of a page's links."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        href = dict(attrs).get("href")
        if tag == "a" and href and not href.startswith(("#", "javascript:", "mailto:")):
            self.hrefs.append(href)


def walk(client: Client, start: str) -> dict[str, int]:
    """Return the status of every same-site link reachable from `start`, each requested once."""
    statuses: dict[str, int] = {}
    read: set[str] = set()
    queue = [start]
    while queue:
        url = queue.pop(0)
        if url in statuses:
            continue
        response = client.get(url)
        statuses[url] = response.status_code
        path = urlsplit(url).path
        if response.status_code != 200 or path in read or "text/html" not in response.get("Content-Type", ""):
            continue
        read.add(path)
        parser = Links()
        parser.feed(response.content.decode())
        for href in parser.hrefs:
            target = urljoin(url, href).split("#")[0]
            parts = urlsplit(target)
            if parts.netloc in ("", "testserver") and not parts.path.startswith(NOT_FOLLOWED):
                queue.append(parts.path + (f"?{parts.query}" if parts.query else ""))
    return statuses


@pytest.fixture
def ledgers(
    make_staff: Callable[..., User],
    make_job_letter: Callable[..., DeadLetter],
    make_run_letter: Callable[..., DeadLetter],
) -> None:
    """A row of every kind each page links to: windows, a run with its attempts, letters open and handled, a job's
    requeue, a snapshot, and a paused cron job with its history."""
    now = timezone.now()
    operator = make_staff("triager", "dispatch.view_cronjobstate", "runs.view_deadletter", "runs.triage_deadletter")
    start = now.replace(second=0, microsecond=0)
    for minutes, status, mode in ((0, "enqueued", "dispatch"), (5, "missed", ""), (10, "inline", "inline")):
        at = start - timedelta(minutes=minutes)
        DispatchWindow.objects.create(
            dispatch_key=f"cron:counter:{at:%Y-%m-%dT%H:%M}", job="counter", status=status, mode=mode,
            source="cron" if mode else "reconciler", correlation_id="c", window_start=at, window_seconds=300,
            requested_at=at,
        )  # fmt: skip
    run_letter = make_run_letter(created_at=now - timedelta(hours=1))
    assert run_letter.function_run is not None
    FunctionRunAttempt.objects.create(run=run_letter.function_run, step="run", attempt=1, status="failed", error="x")
    FunctionRun.objects.create(function_id="cron-counter", dispatch_key="cron:counter:2026-03-14T15:00", run_id="ok")
    make_job_letter(tenant="acme", created_at=now - timedelta(hours=2))
    make_job_letter(created_at=now - timedelta(hours=3), resolution="resolved", resolved_at=now, note="known")
    requeued = make_job_letter(created_at=now - timedelta(hours=4))
    QueueHealthSnapshot.objects.create(
        taken_at=now, pending=1, ready=1, running=0, dead=3, lag_seconds=2.0, unresolved_dead_letters=2
    )
    pages = Client()
    pages.force_login(operator)
    pages.post("/admin/dispatch/cronjobstate/counter/pause/", {"note": "Supplier API down until 16:00 (INC-42)"})
    pages.post("/admin/runs/deadletter/", {"action": "requeue", "_selected_action": [requeued.pk], "index": "0"})
    assert LogEntry.objects.filter(content_type__model="cronjobstate").exists()  # the job has a history
    assert BackgroundJob.objects.filter(status="pending").exists()  # and the letter a job it was requeued as


@pytest.mark.parametrize(("who", "debug"), [("operator", False), ("superuser", True)])
def test_admin_links__every_link_of_every_page_opens(
    ledgers: None, make_staff: Callable[..., User], settings: Any, who: str, debug: bool
) -> None:
    settings.DEBUG = debug
    user = (
        make_staff("root", superuser=True)
        if who == "superuser"
        else make_staff("operator", *OPERATOR_PERMISSIONS, "dispatch.view_cronjobstate")
    )
    client = Client(raise_request_exception=False)
    client.force_login(user)

    statuses = walk(client, "/admin/")

    broken = {url: status for url, status in statuses.items() if status in (404, 500)}
    assert broken == {}
    opened = {urlsplit(url).path for url, status in statuses.items() if status == 200}
    # The walk reached every kind of page: the Cron jobs page and a job's history, the dead letters by cause, and
    # a page of every ledger.
    assert "/admin/dispatch/cronjobstate/" in opened and any(path.endswith("/history/") for path in opened)
    assert "/admin/runs/deadletter/" in opened and any("group=cause" in url for url in statuses)
    for ledger in ("dispatch/dispatchwindow", "runs/functionrun", "runs/deadletter", "jobs/backgroundjob"):
        assert any(path.startswith(f"/admin/{ledger}/") and path.endswith("/change/") for path in opened), ledger
