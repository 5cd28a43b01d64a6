from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone

from core.display import when
from dispatch.models import DispatchWindow
from dispatch.registry import get_cron_job
from dispatch.schedule import cron_job_pause
from dispatch.services import dispatch_tick
from jobs.models import QueueHealthSnapshot
from orchestrator.chart import OUTCOME_COLOURS, RUN_COLOURS, Hour, hourly_chart, nice_ceiling
from orchestrator.dashboard import _count, dashboard_build
from runs.models import DeadLetter, FunctionRun
from testsupport.event_api import EventAPI

pytestmark = pytest.mark.django_db


def snapshot(at: datetime, *, ready: int, lag: float = 0.0) -> QueueHealthSnapshot:
    return QueueHealthSnapshot.objects.create(
        taken_at=at, pending=ready, ready=ready, running=0, dead=0, lag_seconds=lag, unresolved_dead_letters=0
    )


def test_dashboard_build__counts_windows_and_runs_by_outcome_per_hour(
    make_window: Callable[..., DispatchWindow],
    make_run: Callable[..., FunctionRun],
    now: datetime,
) -> None:
    # now is 15:09:26; the current hour is 15:00 and the oldest one shown is 16:00 yesterday.
    make_window(created_at=now - timedelta(minutes=5), latency_ms=40)
    make_window(created_at=now - timedelta(minutes=8), latency_ms=60)
    make_window(created_at=now - timedelta(minutes=62), status="dispatch_failed")  # keeps mode dispatch
    make_window(created_at=now - timedelta(minutes=64), mode="inline", status="inline", job="counter")
    make_window(created_at=now - timedelta(hours=30))  # outside the 24 hours
    make_run(started_at=now - timedelta(minutes=4))
    make_run(started_at=now - timedelta(minutes=65), status="failed", terminal_reason="boom")
    snapshot(now - timedelta(minutes=5), ready=4, lag=12.5)
    snapshot(now - timedelta(minutes=55), ready=2, lag=5.0)
    snapshot(now - timedelta(minutes=62), ready=9, lag=30.0)

    dashboard = dashboard_build(now=now)

    assert len(dashboard.hours) == 24
    assert (dashboard.hours[0].start.isoformat(), dashboard.hours[-1].start.isoformat()) == (
        "2026-03-13T16:00:00+00:00",
        "2026-03-14T15:00:00+00:00",
    )
    current, previous = dashboard.hours[-1], dashboard.hours[-2]
    assert (dict(current.windows), dict(current.runs), current.backlog) == ({"enqueued": 2}, {"succeeded": 1}, 4)
    assert (dict(previous.windows), dict(previous.runs), previous.backlog) == (
        {"dispatch_failed": 1, "inline": 1},
        {"failed": 1},
        9,
    )
    assert all(not hour.windows and hour.backlog is None for hour in dashboard.hours[:-2])
    assert dashboard.table[-2] == {
        "hour": previous.start,
        "windows": 2,
        "failed_windows": 1,
        "crashed_windows": 0,
        "missed_windows": 0,
        "abandoned_windows": 0,
        "paused_windows": 0,
        "runs": 1,
        "failed_runs": 1,
        "backlog": 9,
    }


def test_dashboard_build__the_chart_files_a_window_and_its_runs_under_the_windows_start_not_when_recorded(
    make_window: Callable[..., DispatchWindow],
    make_run: Callable[..., FunctionRun],
    now: datetime,
) -> None:
    """A back-filled window, and a re-published one whose run started late, belong to the hour their window starts."""
    five_hours_ago = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=5)
    make_window(created_at=now, window_start=five_hours_ago + timedelta(minutes=5), source="manual")  # back-filled
    make_window(created_at=now, window_start=five_hours_ago + timedelta(minutes=10), status="missed", mode="")
    make_window(created_at=now - timedelta(hours=30), window_start=now - timedelta(hours=30))  # outside the 24 h
    make_window(created_at=now, window_start=now - timedelta(hours=30), source="manual")  # back-filled, too old
    make_run(started_at=now, window_start=five_hours_ago + timedelta(minutes=5), status="failed", terminal_reason="x")

    dashboard = dashboard_build(now=now)

    by_hour = {hour.start: (dict(hour.windows), dict(hour.runs)) for hour in dashboard.hours}
    assert by_hour[five_hours_ago] == ({"enqueued": 1, "missed": 1}, {"failed": 1})
    assert {start: counts for start, counts in by_hour.items() if counts != ({}, {})} == {
        five_hours_ago: by_hour[five_hours_ago]
    }


def test_dashboard_build__tiles_carry_the_slo_report_figures(
    make_window: Callable[..., DispatchWindow],
    make_job_letter: Callable[..., DeadLetter],
    now: datetime,
) -> None:
    make_window(created_at=now - timedelta(minutes=5), latency_ms=40, duplicate_ticks=3)
    make_window(created_at=now - timedelta(minutes=6), status="dispatch_failed", latency_ms=900)
    make_job_letter()
    make_job_letter(resolution="resolved", resolved_at=now, note="n")
    snapshot(now - timedelta(minutes=30), ready=2, lag=400.0)

    tiles = {tile.label: tile for tile in dashboard_build(now=now).tiles}

    assert (tiles["Dispatch latency p95"].value, tiles["Dispatch latency p95"].tone) == ("900 ms", "good")
    assert tiles["Dispatch latency p95"].detail == "gate ≤ 2,000 ms · 2 dispatched windows"
    assert (tiles["Enqueue failures"].value, tiles["Enqueue failures"].tone) == ("50.00%", "bad")
    assert tiles["Enqueue failures"].detail == "1 of 2 publish attempts · gate ≤ 1.00%"
    assert tiles["Suppressed duplicates"].value == "0 runs · 3 ticks"
    assert tiles["Suppressed duplicates"].detail == "duplicate runs: 0 (gate ≤ 0) · manual re-runs: 0"
    assert (tiles["Queue lag"].value, tiles["Queue lag"].tone) == ("0 s", "bad")  # peak 400 s crossed the gate
    assert tiles["Queue lag"].detail == "peak 400 s in 24 h · gate ≤ 300 s"
    unresolved = tiles["Unresolved dead letters"]
    assert (unresolved.value, unresolved.tone, unresolved.detail) == ("1", "bad", "2 new in 24 h")
    assert unresolved.url == "/admin/runs/deadletter/?state=unresolved"


def test_dashboard_build__lists_the_last_windows_of_every_registered_cron_job(
    make_window: Callable[..., DispatchWindow], now: datetime
) -> None:
    for minutes in range(7):
        make_window(created_at=now - timedelta(minutes=minutes), dispatch_key=f"cron:background-jobs:m{minutes}")
    make_window(created_at=now, job="counter", dispatch_key="cron:counter:x", mode="inline", status="inline")

    jobs = {entry.job: entry.windows for entry in dashboard_build(now=now, windows_per_job=3).jobs}

    assert set(jobs) == {"background-jobs", *(job["name"] for job in settings.CRON_JOBS)}
    assert [w.dispatch_key for w in jobs["background-jobs"]] == [f"cron:background-jobs:m{m}" for m in range(3)]
    assert [w.mode for w in jobs["counter"]] == ["inline"]
    assert jobs["crash"] == []


def test_dashboard_build__lists_each_jobs_last_windows_in_window_order_not_by_creation(
    make_window: Callable[..., DispatchWindow], now: datetime
) -> None:
    """Issue 21: the missed windows a reconcile pass records late sit where their windows are, not on top."""
    start = now.replace(minute=0, second=0, microsecond=0)
    for minutes in (10, 5):
        make_window(created_at=start + timedelta(minutes=minutes), window_start=start + timedelta(minutes=minutes))
    for minutes in (15, 0):  # recorded after the others, both at once
        at = start + timedelta(minutes=minutes)
        make_window(created_at=now, window_start=at, status="missed", mode="", source="reconciler")

    (jobs,) = [entry.windows for entry in dashboard_build(now=now).jobs if entry.job == "background-jobs"]

    assert [(w.window_start - start, w.status) for w in jobs] == [
        (timedelta(minutes=15), "missed"),
        (timedelta(minutes=10), "enqueued"),
        (timedelta(minutes=5), "enqueued"),
        (timedelta(minutes=0), "missed"),
    ]


def test_admin__an_inline_window_whose_run_crashed_reads_as_a_failure_everywhere(
    make_staff: Callable[..., User],
) -> None:
    """Issue 21: it showed a neutral grey `inline` in the list, on its page, on the Cron jobs page and in the panel."""
    job = get_cron_job("crash")
    assert job is not None
    crashed = dispatch_tick(job=job, now=timezone.now(), source="cron", correlation_id="tick", inline=True)
    window = DispatchWindow.objects.get()
    assert (crashed.status_code, window.status) == (500, "inline")
    viewer = Client()
    viewer.force_login(make_staff("viewer", "dispatch.view_dispatchwindow", "dispatch.view_cronjobstate"))

    pages = {
        "list": viewer.get("/admin/dispatch/dispatchwindow/"),
        "page": viewer.get(f"/admin/dispatch/dispatchwindow/{window.pk}/change/"),
        "cron jobs": viewer.get("/admin/dispatch/cronjobstate/"),
        "panel": viewer.get("/admin/"),
    }
    dashboard = dashboard_build(now=timezone.now())

    crashed_badge = f'orch-badge--bad" style="background-color: {OUTCOME_COLOURS["inline_crashed"]}">inline crashed<'
    assert {name: crashed_badge in page.content.decode() for name, page in pages.items()} == dict.fromkeys(pages, True)
    [bar] = [bar for bar in dashboard.chart.bars if " windows " in bar.title]
    assert (bar.title.split(" windows ")[1], bar.colour) == ("inline crashed: 1", OUTCOME_COLOURS["inline_crashed"])
    assert sum(row["crashed_windows"] for row in dashboard.table) == 1


@pytest.mark.parametrize(("value", "ceiling"), [(0, 1), (1, 1), (3, 5), (7, 10), (11, 20), (60, 100), (101, 200)])
def test_nice_ceiling__rounds_up_to_1_2_or_5_times_a_power_of_ten(value: int, ceiling: int) -> None:
    assert nice_ceiling(value) == ceiling


def test_hourly_chart__stacks_each_hour_on_a_shared_axis(now: datetime) -> None:
    hours = [
        Hour(start=now, windows={"enqueued": 6, "dispatch_failed": 2}, runs={"succeeded": 10}, backlog=3),
        Hour(start=now + timedelta(hours=1), windows={}, runs={}, backlog=None),
    ]

    chart = hourly_chart(hours, width=400, height=200)

    assert (chart.count_max, chart.backlog_max) == (10, 5)
    plot = chart.plot_bottom - chart.plot_top
    heights = {bar.title: round(bar.height / plot, 3) for bar in chart.bars}
    assert heights == {
        f"{now:%H}:00 windows enqueued: 6": 0.6,
        f"{now:%H}:00 windows dispatch_failed: 2": 0.2,
        f"{now:%H}:00 runs succeeded: 10": 1.0,
    }
    failed = next(bar for bar in chart.bars if "dispatch_failed" in bar.title)
    dispatched = next(bar for bar in chart.bars if "enqueued: 6" in bar.title)
    assert failed.y + failed.height == pytest.approx(dispatched.y)  # stacked on top
    assert len(chart.backlog_points.split()) == 1  # the hour without a snapshot has no point


def test_admin_index__shows_the_health_panel_to_those_who_may_see_the_windows(
    make_staff: Callable[..., User], make_job_letter: Callable[..., DeadLetter]
) -> None:
    make_job_letter()
    make_job_letter()
    watcher = Client()
    watcher.force_login(make_staff("watcher", "dispatch.view_dispatchwindow", "runs.view_deadletter"))
    outsider = Client()
    outsider.force_login(make_staff("outsider", "jobs.view_backgroundjob"))

    shown = " ".join(watcher.get("/admin/").content.decode().split())
    hidden = outsider.get("/admin/").content.decode()

    assert "Health: the last 24 hours" in shown
    assert (
        '<svg class="orch-chart"' in shown
        and "<script" not in shown.split('id="orch-health"')[1].split("</section>")[0]
    )
    assert (
        '<div class="orch-tile__label">Unresolved dead letters</div> '
        '<div class="orch-tile__value"><a href="/admin/runs/deadletter/?state=unresolved">2</a></div>'
    ) in shown
    assert "Health: the last 24 hours" not in hidden


def test_dashboard__a_failed_publish_is_counted_and_coloured_as_a_failure_not_by_its_mode(
    event_api: EventAPI, make_staff: Callable[..., User]
) -> None:
    """Issue 13: a window whose publish failed keeps mode `dispatch`; the chart and the table go by its outcome."""
    job = get_cron_job("counter")
    assert job is not None
    event_api.behave("error500")
    failed = dispatch_tick(job=job, now=timezone.now(), source="cron", correlation_id="tick")
    window = DispatchWindow.objects.get()
    assert (failed.status_code, window.mode, window.status) == (503, "dispatch", "dispatch_failed")

    dashboard = dashboard_build(now=timezone.now())
    viewer = Client()
    viewer.force_login(make_staff("viewer", "dispatch.view_dispatchwindow"))
    panel = viewer.get("/admin/").content.decode()

    counted: Counter[str] = Counter()
    for hour in dashboard.hours:
        counted.update(hour.windows)
    assert counted == {"dispatch_failed": 1}
    [bar] = [bar for bar in dashboard.chart.bars if " windows " in bar.title]
    assert bar.colour == OUTCOME_COLOURS["dispatch_failed"] == RUN_COLOURS["failed"]
    assert sum(row["failed_windows"] for row in dashboard.table) == 1
    row = panel.split('id="orch-health"')[1].split("counter</th>")[1].split("</tr>")[0]
    assert f'orch-badge--bad" style="background-color: {bar.colour}">dispatch_failed</span>' in row
    assert '<span class="orch-badge orch-badge--mode">dispatch</span>' in row
    assert "orch-badge--good" not in row


def test_hourly_chart__every_outcome_has_its_own_colour() -> None:
    assert set(OUTCOME_COLOURS) == {*DispatchWindow.Status.values, "inline_crashed"}
    assert len(set(OUTCOME_COLOURS.values())) == len(OUTCOME_COLOURS)
    healthy = {OUTCOME_COLOURS["enqueued"], OUTCOME_COLOURS["inline"], RUN_COLOURS["succeeded"]}
    for trouble in ("dispatch_failed", "missed", "abandoned", "pending"):
        assert OUTCOME_COLOURS[trouble] not in healthy


def test_dashboard_build__the_health_panel_shows_missed_paused_and_abandoned_windows(
    make_window: Callable[..., DispatchWindow],
    make_run: Callable[..., FunctionRun],
    make_staff: Callable[..., User],
    now: datetime,
) -> None:
    for minutes in (3, 4):
        make_window(created_at=now - timedelta(minutes=minutes), status="missed", mode="", source="reconciler")
    make_window(created_at=now - timedelta(minutes=5), status="paused", mode="paused", job="counter")
    make_window(created_at=now - timedelta(minutes=6), status="abandoned", mode="inline", publish_attempts=0)
    make_run(status="failed", terminal_reason="abandoned: no progress since …", finished_at=now)
    cron_job_pause(job="counter", user=make_staff("operator"), note="supplier down", now=now)

    dashboard = dashboard_build(now=now)

    tiles = {tile.label: tile for tile in dashboard.tiles}
    assert (tiles["Missed windows"].value, tiles["Missed windows"].tone) == ("2", "bad")
    assert tiles["Missed windows"].url == "/admin/dispatch/dispatchwindow/?status__exact=missed"
    assert (tiles["Paused"].value, tiles["Paused"].tone, tiles["Paused"].detail) == (
        "1 job",
        "warn",
        "counter · 1 paused window in 24 h",
    )
    assert tiles["Paused"].url == "/admin/dispatch/cronjobstate/"
    assert (tiles["Abandoned"].value, tiles["Abandoned"].tone) == ("1 run · 1 window", "bad")
    assert dict(dashboard.hours[-1].windows) == {"missed": 2, "paused": 1, "abandoned": 1}
    assert {bar.colour for bar in dashboard.chart.bars if " windows " in bar.title} == {
        OUTCOME_COLOURS["missed"],
        OUTCOME_COLOURS["paused"],
        OUTCOME_COLOURS["abandoned"],
    }


@pytest.mark.parametrize(
    ("number", "noun", "text"),
    [(1, "run", "1 run"), (0, "tick", "0 ticks"), (1.0, "due job", "1 due job"), (12_345, "run", "12,345 runs")],
)
def test_tile_counts__singular_for_one_with_thousands_separators(number: float, noun: str, text: str) -> None:
    assert _count(number, noun) == text


def test_admin_index__by_function_says_which_function_is_failing(
    make_run: Callable[..., FunctionRun], make_staff: Callable[..., User]
) -> None:
    now = timezone.now()
    failed = {"status": "failed", "terminal_reason": "x"}
    for n in range(3):
        make_run(function_id="process-background-jobs", started_at=now - timedelta(minutes=n))
    make_run(function_id="process-background-jobs", started_at=now - timedelta(hours=1), **failed)
    for n in range(2):
        make_run(function_id="cron-crash", started_at=now - timedelta(minutes=n), **failed)
    make_run(function_id="cron-counter", status="running", started_at=now)
    make_run(function_id="cron-crash", started_at=now - timedelta(hours=30), **failed)  # outside the 24 hours
    # A requeued letter's re-run of a three-day-old window, failing again now: it counts.
    make_run(function_id="cron-flaky", started_at=now, window_start=now - timedelta(days=3), **failed)
    viewer = Client()
    viewer.force_login(make_staff("viewer", "dispatch.view_dispatchwindow", "runs.view_functionrun"))

    functions = dashboard_build(now=now).functions
    page = " ".join(viewer.get("/admin/").content.decode().split())

    # The failing functions first, each with its runs of the last 24 hours; a registered one without a run too.
    figures = {row.function_id: (row.runs, row.succeeded, row.running, row.failed) for row in functions}
    assert [row.function_id for row in functions][:4] == [
        "cron-crash",
        "process-background-jobs",  # as many failures as cron-flaky, more runs
        "cron-flaky",
        "cron-counter",
    ]
    assert [figures[name] for name in ("cron-crash", "cron-flaky", "process-background-jobs", "cron-counter")] == [
        (2, 0, 0, 2),
        (1, 0, 0, 1),
        (4, 3, 0, 1),
        (1, 0, 1, 0),
    ]
    assert figures["background-maintenance"] == figures["cron-daily"] == (0, 0, 0, 0)
    assert "<h3>By function</h3>" in page
    crash = page.split('id="orch-functions"')[1].split("</table>")[0].split("</tr>")[1]
    assert '<a href="/admin/runs/functionrun/?function_id=cron-crash">cron-crash</a></th><td>2</td><td>0</td>' in crash
    assert 'href="/admin/runs/functionrun/?function_id=cron-crash&amp;status__exact=failed">2</a>' in crash
    assert when(now) in crash  # the last failure
