from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from dispatch.models import DispatchWindow
from runs.models import FunctionRun

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/dispatch/dispatchwindow/"


def window(key: str, *, created_at: datetime, **fields: Any) -> DispatchWindow:
    fields.setdefault("job", key.split(":")[1])
    fields.setdefault("status", "enqueued")
    fields.setdefault("mode", "dispatch")
    fields.setdefault("source", "cron")
    fields.setdefault("latency_ms", 12)
    fields.setdefault("window_start", created_at)
    return DispatchWindow.objects.create(
        dispatch_key=key,
        correlation_id=f"c-{key}",
        window_seconds=60,
        requested_at=created_at,
        created_at=created_at,
        updated_at=created_at,
        **fields,
    )


@pytest.fixture
def client(make_staff: Callable[..., User]) -> Client:
    viewer = make_staff("viewer", "dispatch.view_dispatchwindow", "runs.view_functionrun")
    browser = Client()
    browser.force_login(viewer)
    return browser


def test_dispatch_window_changelist__filters_by_status_mode_job_and_source_and_searches_exactly(
    client: Client, now: datetime
) -> None:
    dispatched = window("cron:background-jobs:2026-03-14T15:09", created_at=now)
    failed = window("cron:counter:2026-03-14T15:05", created_at=now - timedelta(minutes=1), status="dispatch_failed")
    manual = window(
        "cron:counter:2026-03-14T15:00:manual-0a1b2c3d", created_at=now - timedelta(minutes=2), status="inline",
        mode="inline", source="manual",
    )  # fmt: skip

    def listed(**query: str) -> list[int]:
        response = client.get(CHANGELIST, query)
        assert response.status_code == 200
        return [row.pk for row in response.context["cl"].result_list]

    assert listed() == [dispatched.pk, failed.pk, manual.pk]
    assert listed(status__exact="dispatch_failed") == [failed.pk]
    assert listed(mode__exact="inline") == [manual.pk]
    assert listed(job="counter") == [failed.pk, manual.pk]
    assert listed(source__exact="manual") == [manual.pk]
    assert listed(q="cron:counter:2026-03-14T15:05") == [failed.pk]
    assert listed(q=f"c-{manual.dispatch_key}") == [manual.pk]


def test_dispatch_window_admin__links_a_window_to_its_runs(client: Client, now: datetime) -> None:
    shown = window("cron:background-jobs:2026-03-14T15:09", created_at=now)
    run = FunctionRun.objects.create(
        function_id="process-background-jobs", dispatch_key=shown.dispatch_key, run_id="r", started_at=now
    )
    FunctionRun.objects.create(function_id="process-background-jobs", dispatch_key="other", run_id="o", started_at=now)

    page = client.get(reverse("admin:dispatch_dispatchwindow_change", args=[shown.pk])).content.decode()
    runs = client.get("/admin/runs/functionrun/", {"dispatch_key": shown.dispatch_key})

    assert 'href="/admin/runs/functionrun/?dispatch_key=cron%3Abackground-jobs%3A2026-03-14T15%3A09"' in page
    assert [row.pk for row in runs.context["cl"].result_list] == [run.pk]


def test_dispatch_window_changelist__outcome_and_mode_are_told_apart(client: Client, now: datetime) -> None:
    """Issue 13: a failed publish (mode dispatch, status dispatch_failed) is red by its outcome, not green by mode."""
    failed = window("cron:counter:2026-03-14T15:05", created_at=now, status="dispatch_failed")
    missed = window(
        "cron:counter:2026-03-14T15:00", created_at=now - timedelta(minutes=1), status="missed", mode="",
        source="reconciler", latency_ms=None,
    )  # fmt: skip

    response = client.get(CHANGELIST)
    page = response.content.decode()
    specs = {str(spec.title): [choice["display"] for choice in spec.choices(response.context["cl"])]
             for spec in response.context["cl"].filter_specs}  # fmt: skip

    # Each outcome spelt as its badge spells it (issue 21).
    assert specs["outcome"] == [
        "All",
        "pending",
        "enqueued",
        "dispatch_failed",
        "inline",
        "missed",
        "paused",
        "abandoned",
    ]
    assert specs["mode"] == [
        "All",
        "dispatch",
        "inline",
        "inline-forced",
        "inline-fallback",
        "paused",
        "(none: missed)",
    ]
    rows = page.split('id="result_list"')[1]
    assert 'orch-badge--bad" style="background-color: #c0392b">dispatch_failed</span>' in rows
    assert '<span class="orch-badge orch-badge--mode">dispatch</span>' in rows
    assert 'orch-badge--bad" style="background-color: #c2510e">missed</span>' in rows
    assert '<td class="field-mode_badge">—</td>' in rows  # a missed window has no mode
    assert "orch-badge--good" not in rows
    listed = client.get(CHANGELIST, {"status__exact": "dispatch_failed"}).context["cl"].result_list
    none = client.get(CHANGELIST, {"mode__exact": ""}).context["cl"].result_list
    assert ([row.pk for row in listed], [row.pk for row in none]) == ([failed.pk], [missed.pk])


def window_texts(response: Any) -> list[str]:
    """Return the window column's texts (the list's first column: a link to the row's page), top to bottom."""
    page = response.content.decode()
    return [part.split('class="orch-window"')[1].split(">")[1].split("<")[0] for part in page.split("<tr")[2:]]


def test_dispatch_window_changelist__each_row_names_its_window_and_job_in_window_order(client: Client) -> None:
    """Issue 21: the missed windows the reconciler records at once read as the windows they are, newest first."""
    recorded = datetime(2026, 3, 14, 15, 9, tzinfo=UTC)  # one reconcile pass recorded them all, oldest last
    for job, minutes in (("counter", 30), ("background-jobs", 5), ("counter", 20), ("background-jobs", 1)):
        start = datetime(2026, 3, 14, 14, 0, tzinfo=UTC) + timedelta(minutes=minutes)
        window(
            f"cron:{job}:{start:%Y-%m-%dT%H:%M}", created_at=recorded, window_start=start, status="missed", mode="",
            source="reconciler", latency_ms=None,
        )  # fmt: skip
    missed = client.get(CHANGELIST, {"status__exact": "missed"})
    page = missed.content.decode()
    header = page.split("<thead>")[1].split("</thead>")[0]
    by_job = header.split("column-cron_job")[1].split('href="')[1].split('"')[0].replace("&amp;", "&")

    assert window_texts(missed) == [
        "2026-03-14 14:30:00 UTC",
        "2026-03-14 14:20:00 UTC",
        "2026-03-14 14:05:00 UTC",
        "2026-03-14 14:01:00 UTC",
    ]
    assert 'title="cron:counter:2026-03-14T14:30"' in page  # the whole key on hover
    assert window_texts(client.get(f"{CHANGELIST}{by_job}")) == [  # by job, then newest window first
        "2026-03-14 14:05:00 UTC",
        "2026-03-14 14:01:00 UTC",
        "2026-03-14 14:30:00 UTC",
        "2026-03-14 14:20:00 UTC",
    ]
    assert "column-window" in header.split("sortable")[1]  # the window is a sortable column too


def test_dispatch_window_changelist__the_dates_drill_down_by_window_start(client: Client) -> None:
    """A window of February recorded in March is found under February."""
    recorded = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    late = window("cron:daily:2026-02-27T00:00", created_at=recorded, window_start=datetime(2026, 2, 27, tzinfo=UTC))
    window("cron:daily:2026-03-02T00:00", created_at=recorded, window_start=datetime(2026, 3, 2, tzinfo=UTC))

    months = client.get(CHANGELIST, {"window_start__year": "2026"})
    february = client.get(CHANGELIST, {"window_start__year": "2026", "window_start__month": "2"})

    assert "February 2026" in months.content.decode() and "March 2026" in months.content.decode()
    assert [row.pk for row in february.context["cl"].result_list] == [late.pk]


def test_dispatch_window_admin__shows_the_cron_ticks_lateness_and_who_re_claimed_the_window(
    client: Client, now: datetime
) -> None:
    early = window("cron:report:2026-03-27T08:00", created_at=now, lateness_ms=-400, reclaimed_by="reconciler")
    late = window("cron:report:2026-03-30T07:00", created_at=now, lateness_ms=83_000)

    shown = [
        " ".join(client.get(reverse("admin:dispatch_dispatchwindow_change", args=[pk])).content.decode().split())
        for pk in (early.pk, late.pk)
    ]

    assert "400 ms early" in shown[0] and "1 min 23 s" in shown[1]
    assert '<label>Reclaimed by:</label> <div class="readonly">Reconciler</div>' in shown[0]
