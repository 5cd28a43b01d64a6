"""What every ledger's admin shares: read-only rows, and changelists that never scan a whole table."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from core.admin import ReadOnlyAdmin
from core.paging import LedgerPaginator
from dispatch.models import DispatchWindow
from jobs.models import BackgroundJob, QueueHealthSnapshot
from runs.models import DeadLetter, FunctionRun

pytestmark = pytest.mark.django_db

BIG = {
    "dispatch/dispatchwindow": "dispatch_dispatchwindow",
    "runs/functionrun": "runs_functionrun",
    "runs/deadletter": "runs_deadletter",
    "jobs/backgroundjob": "jobs_backgroundjob",
}


@pytest.fixture
def rows(
    make_window: Callable[..., DispatchWindow],
    make_run: Callable[..., FunctionRun],
    make_job_letter: Callable[..., DeadLetter],
    make_run_letter: Callable[..., DeadLetter],
    now: datetime,
) -> dict[str, int]:
    """A few rows of every ledger, spread over two years, and the pk of one of each."""
    picked: dict[str, int] = {}
    for days in (0, 40, 400):
        at = now - timedelta(days=days)
        picked["dispatch/dispatchwindow"] = make_window(created_at=at).pk
        picked["runs/functionrun"] = make_run(started_at=at).pk
        letter = make_job_letter(created_at=at)
        picked["runs/deadletter"] = letter.pk
        picked["jobs/backgroundjob"] = letter.job_id or 0
    make_run_letter()
    picked["jobs/queuehealthsnapshot"] = QueueHealthSnapshot.objects.create(
        taken_at=now, pending=1, ready=1, running=0, dead=0, lag_seconds=3.0, unresolved_dead_letters=1
    ).pk
    return picked


def date_links(response: Any) -> list[str]:
    """Return the texts of the date drill-down's links."""
    assert response.status_code == 200
    page = " ".join(response.content.decode().split())
    toplinks = page.split('<nav class="toplinks">')[1].split("</nav>")[0]
    return [part.split(">")[1].split("<")[0].strip() for part in toplinks.split("<a ")[1:]]


@pytest.fixture
def superuser(make_staff: Callable[..., User]) -> Client:
    client = Client()
    client.force_login(make_staff("root", superuser=True))
    return client


@pytest.mark.parametrize("model", [*BIG, "jobs/queuehealthsnapshot"])
def test_ledger_admin__rows_are_shown_but_never_added_changed_or_deleted(
    superuser: Client, rows: dict[str, int], model: str
) -> None:
    pk = rows[model]
    page = superuser.get(f"/admin/{model}/{pk}/change/")

    assert page.status_code == 200
    assert 'name="_save"' not in page.content.decode()
    assert superuser.get(f"/admin/{model}/add/").status_code == 403
    assert superuser.post(f"/admin/{model}/{pk}/change/", {}).status_code == 403
    assert superuser.get(f"/admin/{model}/{pk}/delete/").status_code == 403
    changelist = superuser.get(f"/admin/{model}/")
    assert changelist.status_code == 200
    actions = changelist.context["action_form"]
    assert actions is None or "delete_selected" not in dict(actions.fields["action"].choices)


@pytest.mark.parametrize("model", BIG)
@pytest.mark.parametrize("exact_limit", [10_000, 2])
def test_ledger_changelist__never_counts_or_scans_the_whole_table(
    superuser: Client, rows: dict[str, int], model: str, exact_limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(LedgerPaginator, "exact_limit", exact_limit)

    with CaptureQueriesContext(connection) as queries:
        response = superuser.get(f"/admin/{model}/")

    assert response.status_code == 200
    on_table = [query["sql"] for query in queries.captured_queries if f'"{BIG[model]}"' in query["sql"]]
    counts = [sql for sql in on_table if "COUNT(" in sql.upper()]
    assert counts, "the changelist counts its rows"
    assert all(" LIMIT " in sql for sql in counts), counts  # every count stops at the bound
    # No SELECT DISTINCT over the table, for the filters or for the date drill-down.
    assert not [sql for sql in on_table if "DISTINCT" in sql.upper()]
    page = response.content.decode()
    if exact_limit == 2:
        assert "about " in page and "(an estimate;" in page
    else:
        assert "(an estimate;" not in page


def test_ledger_paginator__counts_exactly_up_to_the_bound_then_estimates(
    make_run: Callable[..., FunctionRun], monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(5):
        make_run()
    queryset = FunctionRun.objects.order_by("-id")

    exact = LedgerPaginator(queryset, per_page=2)
    assert (exact.count, exact.estimated, exact.num_pages) == (5, False, 3)
    monkeypatch.setattr(LedgerPaginator, "exact_limit", 3)
    bounded = LedgerPaginator(queryset, per_page=2)
    monkeypatch.setattr(LedgerPaginator, "max_pages", 2)
    capped = LedgerPaginator(queryset, per_page=2)

    assert bounded.count >= 4 and bounded.estimated  # the planner's estimate, at least the bound + 1
    assert capped.num_pages == 2


def test_ledger_changelist__pages_past_the_cap_are_refused(
    superuser: Client, make_run: Callable[..., FunctionRun], monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(5):
        make_run()
    monkeypatch.setattr(LedgerPaginator, "max_pages", 2)
    monkeypatch.setattr("runs.admin.FunctionRunAdmin.list_per_page", 2)

    second = superuser.get("/admin/runs/functionrun/", {"p": "2"})
    third = superuser.get("/admin/runs/functionrun/", {"p": "3"})

    assert second.status_code == 200
    assert (third.status_code, third["Location"]) == (302, "/admin/runs/functionrun/?e=1")


@pytest.mark.parametrize("exact_limit", [10_000, 2], ids=["read-once", "index-probes"])
def test_ledger_date_hierarchy__offers_the_years_then_the_months_that_hold_rows(
    superuser: Client, make_run: Callable[..., FunctionRun], exact_limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(LedgerPaginator, "exact_limit", exact_limit)
    for moment in ("2025-11-03T10:00", "2026-01-20T10:00", "2026-03-01T10:00", "2026-03-14T23:30"):
        make_run(started_at=datetime.fromisoformat(moment).replace(tzinfo=UTC))

    def choices(**query: str) -> list[str]:
        return date_links(superuser.get("/admin/runs/functionrun/", query))

    assert choices() == ["2025", "2026"]
    assert choices(window_start__year="2026") == ["&lsaquo; All dates", "January 2026", "March 2026"]
    assert choices(window_start__year="2026", window_start__month="3") == ["&lsaquo; 2026", "March 1", "March 14"]


@pytest.mark.parametrize("exact_limit", [10_000, 1], ids=["read-once", "index-probes"])
def test_ledger_date_hierarchy__one_month_of_rows_opens_on_its_days(
    superuser: Client,
    make_run: Callable[..., FunctionRun],
    now: datetime,
    exact_limit: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(LedgerPaginator, "exact_limit", exact_limit)
    make_run(started_at=now)
    make_run(started_at=now - timedelta(days=3))

    links = date_links(superuser.get("/admin/runs/functionrun/"))

    assert links == ["&lsaquo; 2026", "March 11", "March 14"]


def test_background_job_filters__list_the_kinds_and_tenants_present(
    superuser: Client, make_job: Callable[..., BackgroundJob]
) -> None:
    make_job(kind="test.record", tenant="acme")
    make_job(kind="test.fail", tenant="")

    response = superuser.get("/admin/jobs/backgroundjob/")

    cl = response.context["cl"]
    filters = {spec.title: [choice["display"] for choice in spec.choices(cl)] for spec in cl.filter_specs}
    assert filters["kind"] == ["All", "test.fail", "test.record"]
    assert filters["tenant"] == ["All", "(no tenant)", "acme"]


def test_ledger_changelist__a_narrowed_list_says_how_many_rows_it_holds(
    superuser: Client, make_run: Callable[..., FunctionRun], monkeypatch: pytest.MonkeyPatch
) -> None:
    for _ in range(3):
        make_run(status="failed", terminal_reason="boom")
    make_run()

    def count_text(**query: str) -> str:
        page = " ".join(superuser.get("/admin/runs/functionrun/", query).content.decode().split())
        return (
            page.split('<span class="small quiet">')[1].split(" (")[0] if '<span class="small quiet">' in page else ""
        )

    assert count_text() == ""  # the whole list: no count beside the search box
    assert count_text(status__exact="failed") == "3 results"
    assert count_text(q="nothing") == "0 results"
    monkeypatch.setattr(LedgerPaginator, "exact_limit", 2)
    assert count_text(status__exact="failed").startswith("about ")


ORDERED_PAGES = [
    ("dispatch_dispatchwindow", "/admin/dispatch/dispatchwindow/", query)
    for query in (
        {},
        {"o": "0"},  # by window, oldest first
        {"o": "-0"},
        {"o": "1"},  # by job, newest window first within a job
        {"o": "-1"},
        {"o": "8"},  # by creation
        {"status__exact": "missed"},
        {"mode__exact": "inline"},
        {"job": "counter"},
        {"source__exact": "reconciler"},
        {"window_start__year": "2026", "window_start__month": "3"},
    )
] + [
    ("runs_functionrun", "/admin/runs/functionrun/", query)
    for query in (
        {},
        {"o": "0"},  # by function, newest window first within a function
        {"o": "-0"},
        {"o": "1"},  # by window
        {"o": "-1"},
        {"o": "7"},  # by start
        {"status__exact": "failed"},
        {"function_id": "cron-counter"},
        {"scope": "acme"},
        {"source": "cron"},
        {"window_start__year": "2026", "window_start__month": "3"},
    )
]


@pytest.mark.parametrize(("table", "url", "query"), ORDERED_PAGES)
def test_ledger_changelist__every_order_and_filter_reads_its_page_from_an_index(
    superuser: Client,
    make_window: Callable[..., DispatchWindow],
    make_run: Callable[..., FunctionRun],
    now: datetime,
    monkeypatch: pytest.MonkeyPatch,
    table: str,
    url: str,
    query: dict[str, str],
) -> None:
    """A page of a million-row list is read in order from an index: no sort of every (matching) row."""
    for minutes in (5, 10):  # two rows for each filter, of March 2026
        at = now - timedelta(minutes=minutes)
        make_window(created_at=at, job="counter", status="missed", mode="", source="reconciler")
        make_window(created_at=at, job="counter", status="inline", mode="inline")
        make_run(
            started_at=at, function_id="cron-counter", status="failed", terminal_reason="x", scope="acme", source="cron"
        )
    monkeypatch.setattr(ReadOnlyAdmin, "list_per_page", 1)  # a list of more than one page: its rows are a LIMIT
    with CaptureQueriesContext(connection) as queries:
        response = superuser.get(url, query)
    assert response.status_code == 200
    [page] = [
        q["sql"] for q in queries.captured_queries if f'FROM "{table}"' in q["sql"] and q["sql"].endswith("LIMIT 1")
    ]

    with connection.cursor() as cursor:
        # Any plan but an ordered index scan costs more than any plan that is one, however few rows are here.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_sort = off")
        cursor.execute(f"EXPLAIN {page}")
        plan = "\n".join(row[0] for row in cursor.fetchall())

    # Read in order (no Sort node over the rows), and a filter is the index's own condition, not a Filter line that
    # would walk the whole index to find the rows it keeps.
    assert "Seq Scan" not in plan and not re.search(r"(^|->  )Sort ", plan, re.MULTILINE), plan
    assert "Filter:" not in plan, plan
