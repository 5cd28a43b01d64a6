"""Changelist and detail-page cells: status badges, durations, ages and links between ledgers."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from django.db.models import Model
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timesince import timesince

EMPTY = "—"

# One tone per outcome (a status or a resolution) across every ledger: a failure is never in a healthy colour.
TONES = {
    "good": {"succeeded", "enqueued", "requeued", "resolved"},
    "bad": {"failed", "dead", "dispatch_failed", "missed", "abandoned", "unresolved"},
    "warn": {"pending", "running", "paused", "emergency"},
    "calm": {"inline", "cancelled", "manual", "cron"},
}
TONE_OF = {value: tone for tone, values in TONES.items() for value in values}
# A mode says how a tick handled its window, not how it went: neutral, but for the emergency levers.
MODE_TONES = {"inline-forced": "warn", "inline-fallback": "warn", "paused": "warn", "dispatch-failed": "bad"}


def badge(value: str, label: str | None = None) -> SafeString:
    """Return an outcome as a coloured badge (its tone says good, bad, pending or neutral)."""
    return format_html(
        '<span class="orch-badge orch-badge--{}">{}</span>', TONE_OF.get(value, "calm"), label or value or EMPTY
    )


CLIP_SIZES = ("narrow", "medium", "wide")
CLIP_TITLE_LIMIT = 1000  # characters of the whole text kept on hover; the detail page has all of it


def clipped(text: str, size: str = "medium") -> SafeString | str:
    """Return `text` on one line cut to a column's width with an ellipsis, the whole of it on hover (title).

    A changelist then fits its screen (1400 px) whatever a kind, key or error holds.
    """
    if not text:
        return EMPTY
    if size not in CLIP_SIZES:
        raise ValueError(f"size must be one of {', '.join(CLIP_SIZES)}; got {size!r}")
    return format_html(
        '<span class="orch-clip orch-clip--{}" title="{}">{}</span>', size, text[:CLIP_TITLE_LIMIT], text
    )


def first_line(text: str) -> str:
    """Return the first line of `text` ("" for none): an error's `Type: message`."""
    return text.strip().splitlines()[0] if text.strip() else ""


def mode_badge(value: str) -> SafeString:
    """Return a mode as a neutral badge (its window's outcome badge carries the colour); "" is shown as —."""
    return format_html(
        '<span class="orch-badge orch-badge--{}">{}</span>', MODE_TONES.get(value, "mode"), value or EMPTY
    )


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


def age(moment: datetime | None, *, now: datetime | None = None) -> str:
    """Return how long ago `moment` was, to the largest unit (`3 minutes`)."""
    if moment is None:
        return EMPTY
    return timesince(moment, now=now, depth=1)


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
