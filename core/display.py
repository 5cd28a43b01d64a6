"""Changelist and detail-page cells: status badges, times, durations, ages, tenants and links between ledgers.

One colour per outcome and one time format, on every page and in the health panel's chart (docs/admin.md).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from django.db.models import Model
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timesince import timesince

EMPTY = "—"
# Every time the admin shows, as `2026-12-04 14:05:21 UTC` (core/formats sets Django's own to the same).
TIME_FORMAT = "%Y-%m-%d %H:%M:%S UTC"
# The tenant a row of no tenant has: a job's "" and a run's or letter's scope "global" (a reserved tenant name).
NO_TENANT = ("", "global")

GREEN, BLUE, TEAL, SLATE, AMBER, ORANGE, PURPLE, RED, DARK_RED = (
    "#2e7d4f",
    "#2f6ea8",
    "#1d7f86",
    "#5f7384",
    "#a86200",
    "#c2510e",
    "#8e44ad",
    "#c0392b",
    "#8b2219",
)
# One colour per outcome (a status, a resolution or a job's state), the same on every badge and in the chart; each
# tone is a family: good (green, blue, teal), bad (red, orange, purple), warn (amber: a lever pulled), calm (slate).
OUTCOMES = {
    "succeeded": ("good", GREEN),
    "resolved": ("good", GREEN),
    "active": ("good", GREEN),
    "enqueued": ("good", BLUE),
    "requeued": ("good", BLUE),
    "inline": ("good", TEAL),
    "pending": ("calm", SLATE),
    "running": ("calm", SLATE),
    "cancelled": ("calm", SLATE),
    "paused": ("warn", AMBER),
    "emergency": ("warn", AMBER),
    "missed": ("bad", ORANGE),
    "abandoned": ("bad", PURPLE),
    "dispatch_failed": ("bad", RED),
    "failed": ("bad", RED),
    "dead": ("bad", RED),
    "unresolved": ("bad", RED),
    # An inline window whose run crashed: its status is `inline`, its outcome a failure (DispatchWindow.outcome).
    "inline_crashed": ("bad", DARK_RED),
}
OUTCOME_LABELS = {"inline_crashed": "inline crashed"}
# A mode says how a tick handled its window, not how it went: outlined, but for the levers and a failed publish.
MODE_OUTCOMES = {
    "inline-forced": "paused",
    "inline-fallback": "paused",
    "paused": "paused",
    "dispatch-failed": "failed",
}


def colour(outcome: str) -> str:
    """Return the colour of an outcome (slate for one it does not know)."""
    return OUTCOMES.get(outcome, ("calm", SLATE))[1]


def badge(value: str, label: str | None = None) -> SafeString:
    """Return an outcome as a badge in its colour (its class names its tone: good, bad, warn or calm)."""
    tone, fill = OUTCOMES.get(value, ("calm", SLATE))
    return format_html(
        '<span class="orch-badge orch-badge--{}" style="background-color: {}">{}</span>',
        tone,
        fill,
        label or OUTCOME_LABELS.get(value, value) or EMPTY,
    )


def mode_badge(value: str) -> SafeString | str:
    """Return a mode as an outlined badge (its window's outcome badge carries the colour); none (missed) as —."""
    if not value:
        return EMPTY
    outcome = MODE_OUTCOMES.get(value)
    if outcome is None:
        return format_html('<span class="orch-badge orch-badge--mode">{}</span>', value)
    return badge(outcome, value)


CLIP_SIZES = ("narrow", "medium", "wide")
CLIP_TITLE_LIMIT = 1000  # characters of the whole text kept on hover; the detail page has all of it


def clipped(text: str, size: str = "medium") -> SafeString | str:
    """Return `text` on one line cut to a column's width with an ellipsis, the whole of it on hover (title).

    A changelist then fits its screen (1024 px and up) whatever a kind, key or error holds.
    """
    if not text:
        return EMPTY
    if size not in CLIP_SIZES:
        raise ValueError(f"size must be one of {', '.join(CLIP_SIZES)}; got {size!r}")
    return format_html(
        '<span class="orch-clip orch-clip--{}" title="{}">{}</span>', size, text[:CLIP_TITLE_LIMIT], text
    )


def tenant_cell(scope: str) -> SafeString | str:
    """Return a row's tenant, clipped in a list; — for none (a job's "" and a run's or letter's `global` alike)."""
    return EMPTY if scope in NO_TENANT else clipped(scope, "narrow")


def first_line(text: str) -> str:
    """Return the first line of `text` ("" for none): an error's `Type: message`."""
    return text.strip().splitlines()[0] if text.strip() else ""


def when(moment: datetime | None) -> str:
    """Return a moment as every admin page shows one: `2026-12-04 14:05:21 UTC`."""
    return EMPTY if moment is None else moment.astimezone(UTC).strftime(TIME_FORMAT)


def duration(milliseconds: float | None) -> str:
    """Return a duration for people: `840 ms`, `12.3 s`, `4 min 3 s`, `2 h 5 min`."""
    if milliseconds is None:
        return EMPTY
    if milliseconds < 1000:
        return f"{milliseconds:.0f} ms"
    seconds = milliseconds / 1000
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {seconds} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def lateness(milliseconds: float | None) -> str:
    """Return how late something came (`1.2 s`), or how early (`400 ms early`), as `duration` writes it."""
    if milliseconds is not None and milliseconds < 0:
        return f"{duration(-milliseconds)} early"
    return duration(milliseconds)


# An age in a list's cell, to its largest unit: short, as a column of them is read (`3 min`, `2 h`, `5 d`).
AGE_UNITS = {
    "year": "%(num)d y",
    "month": "%(num)d mo",
    "week": "%(num)d wk",
    "day": "%(num)d d",
    "hour": "%(num)d h",
    "minute": "%(num)d min",
}


def age(moment: datetime | None, *, now: datetime | None = None) -> str:
    """Return how long ago `moment` was, to its largest unit (`3 min`, `2 h`, `5 d`)."""
    if moment is None:
        return EMPTY
    return timesince(moment, now=now, depth=1, time_strings=AGE_UNITS)


def ago(moment: datetime | None, *, now: datetime | None = None) -> SafeString | str:
    """Return `3 min ago`, the moment itself on hover (title)."""
    if moment is None:
        return EMPTY
    return format_html('<span title="{}">{} ago</span>', when(moment), age(moment, now=now))


def change_url(model: type[Model] | str, pk: Any) -> str:
    """Return the admin page of row `pk` of `model` (without loading the row)."""
    return reverse(_admin_url_name(model, "change"), args=[pk])


def changelist_url(model: type[Model] | str, **params: Any) -> str:
    """Return the admin changelist of `model`, filtered by `params`."""
    url = reverse(_admin_url_name(model, "changelist"))
    return f"{url}?{urlencode(params)}" if params else url


def _admin_url_name(model: type[Model] | str, view: str) -> str:
    """Return the admin's URL name of `view` for `model`: a class, or "app_label.ModelName".

    A label links a lower layer's page to a higher layer's rows without importing
    their model (docs/architecture.md).
    """
    if isinstance(model, str):
        app_label, _, name = model.partition(".")
        return f"admin:{app_label}_{name.lower()}_{view}"
    return f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}"


def link(url: str, text: object) -> SafeString:
    return format_html('<a href="{}">{}</a>', url, text)


def pretty_json(value: Any) -> SafeString:
    """Return `value` as indented JSON in a <pre> block."""
    return format_html('<pre class="orch-json">{}</pre>', json.dumps(value, indent=2, sort_keys=True, default=str))
