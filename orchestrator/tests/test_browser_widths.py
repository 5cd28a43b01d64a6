"""The admin at 1024 × 768 and at 1400 × 900 with real data, in a real browser (as test_browser.py).

A day of windows and runs, an incident's dead letters with long errors, rows with the longest
kinds, tenants, keys and cron job names, a crashed inline window, missed windows, requeued and resolved
letters, and a job paused with a long note. At each width every page is opened and checked as
an operator would see it: it answers 200, nothing scrolls sideways, no text is cut off without
its ellipsis, a function's name is whole in the runs' list, each row is one line, an error column
keeps room for its text, the Cron jobs page's buttons never overlap, each outcome has one
colour (in every badge and in the chart), a crashed inline window reads as a failure, the
Cron jobs page's lateness figures sit on one line of their cell, and every time is written one
way. The screenshots land in `artefacts/` as `admin-<page>-<width>.png` (and the Cron jobs
table alone as `admin-cron-jobs-table-<width>.png`).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable
from datetime import timedelta
from itertools import combinations
from typing import Any

from django.contrib import admin
from django.contrib.auth.models import User
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from core.timefmt import iso_utc
from dispatch import keys
from dispatch.models import CronJobState, DispatchWindow
from dispatch.registry import get_cron_job
from dispatch.schedule import cron_job_pause
from dispatch.services import dispatch_tick
from jobs.models import BackgroundJob, QueueHealthSnapshot
from orchestrator.tests.test_browser import ARTEFACTS, a_day_of_history, chromium
from orchestrator.tests.test_browser_fit import FIT, an_incident, long_rows, sign_in
from runs.models import DeadLetter, FunctionRun
from runs.triage import dead_letter_requeue, dead_letter_resolve

SIZES = ((1024, 768), (1400, 900))
# The longest name a cron job may have (dispatch.registry.JOB_NAME_RE), and a crashing one: its window reads as one.
LONG_JOB = "invoices-sync-acme-corporation-emea-north-region"
NOTE = (
    "Supplier API down until 16:00 (INC-4242): the invoices endpoint answers 503 for every tenant. Resume when "
    "status.payments.example.com says all green, then trigger now once to catch up."
)
ERROR_MIN_CHARACTERS = 20
# Each page's widths in one call: the error cells in characters, the action buttons' boxes, every badge's colour
# (modes are outlined: not outcomes), the chart legend's colours, and every text that looks like a time.
LOOK = """() => {
  const zero = document.createElement("span");
  zero.textContent = "0".repeat(100);
  zero.style.cssText = "position:absolute;visibility:hidden;white-space:nowrap;font:inherit";
  const errors = Array.from(
    document.querySelectorAll("#result_list td.field-error_preview, #orch-causes td.orch-cause"));
  let characters = null;
  if (errors.length) {
    errors[0].appendChild(zero);
    const ch = zero.getBoundingClientRect().width / 100;
    zero.remove();
    characters = Math.min(...errors.map(td => td.clientWidth / ch));
  }
  const box = e => { const r = e.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; };
  const actions = Array.from(document.querySelectorAll("td.orch-cron-actions")).map(td => ({
    cell: box(td), buttons: Array.from(td.querySelectorAll(".button")).map(box)}));
  const badges = Array.from(document.querySelectorAll(".orch-badge:not(.orch-badge--mode)")).map(b => [
    b.textContent.trim(), getComputedStyle(b).backgroundColor, b.className]);
  const legend = Array.from(document.querySelectorAll(".orch-legend li")).map(li => [
    li.textContent.trim(), getComputedStyle(li.querySelector(".orch-swatch")).backgroundColor]);
  // The lateness figures of each Cron jobs row (its drift badge aside): the lines their text takes, each line's box,
  // the cell's box, and the boxes of the row's other cells.
  const lateness = Array.from(document.querySelectorAll("#cron-jobs td.orch-cron-lateness")).map(td => {
    const walker = document.createTreeWalker(td, NodeFilter.SHOW_TEXT);
    const boxes = [];
    for (let node = walker.nextNode(); node; node = walker.nextNode()) {
      if (!node.textContent.trim() || node.parentElement.closest(".orch-badges")) continue;
      const range = document.createRange();
      range.selectNodeContents(node);
      const rects = Array.from(range.getClientRects()).filter(r => r.width > 0);
      boxes.push(...rects.map(r => [r.left, r.top, r.right, r.bottom]));
    }
    const figures = Array.from(td.childNodes).filter(n => !(n.nodeType === 1 && n.matches(".orch-badges")))
      .map(n => n.textContent).join(" ").replace(/\\s+/g, " ").trim();
    return {figures, lines: new Set(boxes.map(b => Math.round(b[1]))).size, boxes, cell: box(td),
      others: Array.from(td.parentElement.children).filter(c => c !== td).map(box)};
  });
  // Text cut off by a box that hides its overflow, without the ellipsis a clipped cell shows (its whole on hover).
  const clipped = Array.from(document.querySelectorAll("#content *")).filter(e => {
    const style = getComputedStyle(e);
    return ["hidden", "clip"].includes(style.overflowX) && style.textOverflow !== "ellipsis"
      && !e.closest(".visually-hidden") && e.scrollWidth > e.clientWidth + 1;
  }).map(e => `${e.tagName.toLowerCase()}.${e.className}: ${e.textContent.trim().slice(0, 40)}`);
  // The function column of the runs' list: each name whole, or cut only when its column has no room left.
  const functions = Array.from(document.querySelectorAll("#result_list .field-function .orch-clip")).map(c => [
    c.textContent.trim(), c.scrollWidth <= c.clientWidth + 1]);
  // A letter's page: its Requeue and Resolve buttons, side by side, alike.
  const triage = Array.from(document.querySelectorAll(".orch-triage-buttons :is(.button, [type=submit])")).map(b =>
    [Math.round(b.getBoundingClientRect().height), getComputedStyle(b).fontSize]);
  return {characters, actions, badges, legend, lateness, clipped, functions, triage, text: document.body.innerText};
}"""
# Every time the admin shows; a date and a clock time in any other shape, or Django's own ("Dec. 4, 2026, 4:06 p.m.").
ONE_FORMAT = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC")
A_TIME = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:[+-]\d\d:?\d\d| ?UTC| ?Z)?")
DJANGOS_OWN = re.compile(r"\b[A-Z][a-z]{2,8}\.? \d{1,2}, \d{4}\b|\b[ap]\.m\.")


def overlaps(a: list[float], b: list[float]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def real_day(
    make_job_letter: Callable[..., DeadLetter], make_run_letter: Callable[..., DeadLetter], root: User
) -> None:
    """What a busy day leaves, with the longest texts a row holds and the ids of a ledger in use for months."""
    now = timezone.now()
    with connection.cursor() as cursor:
        for table in ("dispatch_dispatchwindow", "runs_functionrun", "runs_deadletter", "jobs_backgroundjob"):
            cursor.execute("SELECT setval(pg_get_serial_sequence(%s, 'id'), 4200000)", [table])
    a_day_of_history(now)
    incident = an_incident(now, make_job_letter)
    long_rows(now)
    make_run_letter(created_at=now - timedelta(hours=2))
    crash, long_named = get_cron_job("crash"), get_cron_job(LONG_JOB)
    assert crash is not None and long_named is not None
    dispatch_tick(job=crash, now=now, source="cron", correlation_id="tick-crash", inline=True)
    dispatch_tick(job=long_named, now=now, source="cron", correlation_id="tick-long", inline=True)
    for minutes in (10, 20):  # a silent cron service: the reconciler records the windows no tick came for
        start = keys.window_start(now - timedelta(minutes=minutes), 300)
        DispatchWindow.objects.create(
            dispatch_key=keys.dispatch_key("counter", start), job="counter", status="missed", mode="",
            source="reconciler", correlation_id="reconcile-1", window_start=start, window_seconds=300,
            requested_at=now, created_at=now, updated_at=now,
        )  # fmt: skip
    dead_letter_requeue(letter_ids=[incident["refused"][0].pk], user=root, now=now)
    dead_letter_resolve(
        letter_ids=[incident["timeout"][0].pk], user=root, note="Known: the replica restarted.", now=now
    )
    cron_job_pause(job="counter", user=root, note=NOTE, now=now)
    # A cron service that ticks a little late, then nearly a window of 15 minutes late: the longest figures a row shows.
    for minutes, late_ms in ((3, 1_200), (2, 3_400), (1, 899_000)):
        start = keys.window_start(now - timedelta(minutes=minutes), 60)
        DispatchWindow.objects.create(
            dispatch_key=keys.dispatch_key("flaky", start), job="flaky", status="enqueued", mode="dispatch",
            source="cron", correlation_id="tick-flaky", window_start=start, window_seconds=60, requested_at=now,
            created_at=now, updated_at=now, latency_ms=12, publish_attempts=1, lateness_ms=late_ms,
        )  # fmt: skip
    CronJobState.objects.update_or_create(job="flaky", defaults={"drift_ticks": 12})


def pages() -> dict[str, str]:
    """Every page an operator reads: the index, the Cron jobs page and its forms, every list, the by-cause list, a row
    of each (and the rows with the longest texts), a cron job's history."""
    listed = {
        model._meta.model_name or "": reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
        for model in admin.site._registry
        if model._meta.app_label in ("dispatch", "jobs", "runs")
    }
    crashed = DispatchWindow.objects.get(job="crash")
    requeued = DeadLetter.objects.filter(resolution="requeued").first()
    run = FunctionRun.objects.filter(status="failed").order_by("-pk").first()
    run_letter = DeadLetter.objects.filter(source="function_run").first()
    assert requeued is not None and run is not None and run_letter is not None
    longest = {  # long_rows: a manual key, a 64-character correlation id, a 100-character run id, a long dedupe key
        "dispatchwindow-long-page": DispatchWindow.objects.get(source="emergency"),
        "functionrun-long-page": FunctionRun.objects.get(source="emergency"),
        "backgroundjob-long-page": BackgroundJob.objects.get(queue="emails-transactional"),
    }
    counter = CronJobState.objects.get(job="counter")
    return {
        "index": reverse("admin:index"),
        **listed,
        "dispatchwindow-missed": f"{listed['dispatchwindow']}?status__exact=missed",
        "deadletter-by-cause": f"{listed['deadletter']}?group=cause",
        "dispatchwindow-page": reverse("admin:dispatch_dispatchwindow_change", args=[crashed.pk]),
        "functionrun-page": reverse("admin:runs_functionrun_change", args=[run.pk]),
        "deadletter-page": reverse("admin:runs_deadletter_change", args=[requeued.pk]),
        "deadletter-run-page": reverse("admin:runs_deadletter_change", args=[run_letter.pk]),
        **{
            name: reverse(f"admin:{row._meta.app_label}_{row._meta.model_name}_change", args=[row.pk])
            for name, row in longest.items()
        },
        "queuehealthsnapshot-page": reverse(
            "admin:jobs_queuehealthsnapshot_change", args=[QueueHealthSnapshot.objects.order_by("-pk")[0].pk]
        ),
        "cronjobstate-pause": reverse("admin:dispatch_cronjobstate_pause", args=[LONG_JOB]),
        "cronjobstate-backfill": reverse("admin:dispatch_cronjobstate_backfill", args=[LONG_JOB]),  # its list shown
        "cronjobstate-history": reverse("admin:dispatch_cronjobstate_history", args=[counter.pk]),
    }


def test_admin_at_1024_and_1400_px__real_data_fits_reads_and_colours_as_one(
    live_server: Any,
    make_staff: Callable[..., User],
    make_job_letter: Callable[..., DeadLetter],
    make_run_letter: Callable[..., DeadLetter],
    settings: Any,
) -> None:
    settings.CRON_JOBS = [
        *settings.CRON_JOBS,
        {"name": LONG_JOB, "window_seconds": 900, "callable": "testsupport.crons.crash"},
    ]
    real_day(make_job_letter, make_run_letter, make_staff("root", superuser=True))
    urls = pages()
    ARTEFACTS.mkdir(exist_ok=True)
    seen: dict[tuple[str, int], dict[str, Any]] = {}

    with chromium() as page:
        sign_in(page, live_server.url, "root")
        for width, height in SIZES:
            page.set_viewport_size({"width": width, "height": height})
            for name, url in urls.items():
                response = page.goto(f"{live_server.url}{url}")
                if name == "cronjobstate-backfill":
                    page.fill("#id_first", iso_utc(timezone.now() - timedelta(hours=2)))
                    page.click("input[name=preview]")
                    page.wait_for_selector("#backfill-plan")
                status = 0 if response is None else response.status
                seen[name, width] = {"status": status, **page.evaluate(FIT), **page.evaluate(LOOK)}
                page.screenshot(path=str(ARTEFACTS / f"admin-{name}-{width}.png"), full_page=True)
                if name == "cronjobstate":
                    page.locator("#cron-jobs").screenshot(path=str(ARTEFACTS / f"admin-cron-jobs-table-{width}.png"))

    # Every page opens, nothing scrolls sideways, no text is cut off, and each row of each list is one line.
    assert {key: look["status"] for key, look in seen.items() if look["status"] != 200} == {}
    assert {key: look["clipped"] for key, look in seen.items() if look["clipped"]} == {}
    # A function's name is whole in the runs' list (it was cut to "process-backgroun…" beside empty room).
    for width, _ in SIZES:
        shown = dict(seen["functionrun", width]["functions"])
        assert shown["process-background-jobs"] and shown["cron-crash"], (width, shown)
    # A letter's Requeue and Resolve buttons are alike (Requeue was the smaller).
    for width, _ in SIZES:
        buttons = seen["deadletter-run-page", width]["triage"]
        assert len(buttons) == 2 and buttons[0] == buttons[1], (width, buttons)
    # Nothing scrolls sideways, and each row of each list is one line.
    assert {key: (look["over"], look["tall"]) for key, look in seen.items() if look["over"] or look["tall"]} == {}
    # An error column keeps room for its text (it was cut to ~3 characters at 1024 px).
    errors = {key: look["characters"] for key, look in seen.items() if look["characters"] is not None}
    assert {key for key in errors} >= {("deadletter", 1024), ("backgroundjob", 1024), ("deadletter-by-cause", 1024)}
    assert {key: round(n) for key, n in errors.items() if n < ERROR_MIN_CHARACTERS} == {}
    # The Cron jobs page's buttons never overlap, and stay in their cell ("Pause…" sat 7 px on "Trigger now").
    for width, _ in SIZES:
        rows = seen["cronjobstate", width]["actions"]
        assert rows and all(len(row["buttons"]) == 3 for row in rows)  # pause or resume, trigger now, back-fill
        for row in rows:
            assert not any(overlaps(a, b) for a, b in combinations(row["buttons"], 2)), (width, row)
            assert all(overlaps(button, row["cell"]) and button[2] <= row["cell"][2] for button in row["buttons"])
    # The lateness figures (the last, the p95 over 24 h) sit on one line of their cell, overlapping no other cell.
    for width, _ in SIZES:
        cells = seen["cronjobstate", width]["lateness"]
        flaky = [cell for cell in cells if cell["figures"].startswith("14 min 59 s")]
        assert [cell["figures"] for cell in flaky] == ["14 min 59 s / p95 14 min 59 s"], width
        for cell in cells:
            assert cell["lines"] == 1, (width, cell["figures"], cell["boxes"])
            inside = [b[0] >= cell["cell"][0] - 0.5 and b[2] <= cell["cell"][2] + 0.5 for b in cell["boxes"]]
            assert all(inside), (width, cell["figures"], cell["boxes"], cell["cell"])
            assert not any(overlaps(cell["cell"], other) for other in cell["others"]), (width, cell["figures"])
    # One colour per outcome, on every badge of every page and in the chart's legend.
    colours: dict[str, set[str]] = defaultdict(set)
    for look in seen.values():
        for text, colour, _ in look["badges"]:
            colours[text].add(colour)
        for text, colour in look["legend"]:
            if text.startswith(("windows: ", "runs: ")):
                colours[text.split(": ", 1)[1]].add(colour)
    assert {text: shades for text, shades in colours.items() if len(shades) > 1} == {}
    assert {"missed", "requeued", "resolved", "inline crashed", "dispatch_failed"} <= set(colours)
    assert colours["requeued"] != colours["resolved"]
    # A crashed inline window reads as the failure it is, wherever its outcome is shown.
    for name in ("index", "cronjobstate", "dispatchwindow", "dispatchwindow-page"):
        crashed = [classes for text, _, classes in seen[name, 1400]["badges"] if text == "inline crashed"]
        assert crashed and all("orch-badge--bad" in classes for classes in crashed), name
    # Every time in one format.
    odd = {
        key: {t for t in A_TIME.findall(look["text"]) if not ONE_FORMAT.fullmatch(t)}
        | set(DJANGOS_OWN.findall(look["text"]))
        for key, look in seen.items()
    }
    assert {key: times for key, times in odd.items() if times} == {}
    assert all(ONE_FORMAT.search(seen[name, 1400]["text"]) for name in ("index", "cronjobstate", "deadletter-page"))
