"""Changelist pieces for big ledgers: an honest result count, and a date drill-down without full scans."""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta
from typing import Any

from django import template
from django.contrib.admin.templatetags.admin_list import pagination, search_form
from django.contrib.admin.views.main import ChangeList
from django.db.models import Max, Min, QuerySet
from django.utils import formats, timezone
from django.utils.safestring import SafeString
from django.utils.text import capfirst

from core.display import ago, badge, duration, lateness, when
from core.display import mode_badge as mode_badge_html

register = template.Library()

# A changelist of at most this many rows (counted exactly) is read once for its dates.
READ_ONCE_LIMIT = 1000


@register.filter
def status_badge(value: str) -> SafeString:
    """Render an outcome (a status or a resolution) as a coloured badge."""
    return badge(value)


@register.filter(name="ago")
def ago_filter(moment: datetime | None, now: datetime | None = None) -> SafeString | str:
    """Render how long ago `moment` was ("3 h ago"), the moment itself on hover, as the changelists do."""
    return ago(moment, now=now)


@register.filter(name="when")
def when_filter(moment: datetime | None) -> str:
    """Render a moment as every admin page does: `2026-12-04 14:05:21 UTC`."""
    return when(moment)


@register.filter(name="duration")
def duration_filter(milliseconds: float | None) -> str:
    """Render a duration as the changelists do: `840 ms`, `12.3 s`."""
    return duration(milliseconds)


@register.filter(name="lateness")
def lateness_filter(milliseconds: float | None) -> str:
    """Render how late something came (`1.2 s`), or how early (`400 ms early`)."""
    return lateness(milliseconds)


@register.filter
def mode_badge(value: str) -> SafeString | str:
    """Render a mode as an outlined badge (the outcome badge beside it carries the colour)."""
    return mode_badge_html(value)


@register.inclusion_tag("admin/core/search_form.html")
def ledger_search_form(cl: ChangeList) -> dict[str, Any]:
    """Render the search box, with the narrowed list's count ("about N" when it is an estimate)."""
    return search_form(cl)


@register.inclusion_tag("admin/core/pagination.html")
def ledger_pagination(cl: ChangeList) -> dict[str, Any]:
    """Render the page links, and the result count ("about N" when it is the planner's estimate)."""
    return pagination(cl)


@register.inclusion_tag("admin/date_hierarchy.html")
def ledger_date_hierarchy(cl: ChangeList) -> dict[str, Any]:
    """Return the admin's date drill-down without a DISTINCT over every row.

    Django's own drill-down lists the years, months or days that hold rows with a
    `SELECT DISTINCT date_trunc(...)` over the whole filtered list. Here a small list
    (at most READ_ONCE_LIMIT rows) is read once; a larger one is probed: MIN and
    MAX, then an EXISTS on each candidate year, month or day, each an index lookup.
    """
    field = cl.date_hierarchy
    year, month, day = (cl.params.get(f"{field}__{part}") for part in ("year", "month", "day"))
    dates = Dates(cl)

    def link(filters: dict[str, Any]) -> str:
        return str(cl.get_query_string(filters, [f"{field}__"]))

    if not (year or month or day):
        bounds = dates.bounds()
        if bounds is None:
            return {"show": True, "back": None, "choices": []}
        first, last = bounds
        if first.year != last.year:
            years = [y for y in range(first.year, last.year + 1) if dates.holds(y)]
            return {
                "show": True,
                "back": None,
                "choices": [{"link": link({f"{field}__year": y}), "title": str(y)} for y in years],
            }
        year = str(first.year)
        if first.month == last.month:
            month = str(first.month)
    y = int(year) if year else 0
    if year and month and day:
        shown = datetime(y, int(month), int(day))
        return {
            "show": True,
            "back": {
                "link": link({f"{field}__year": year, f"{field}__month": month}),
                "title": capfirst(formats.date_format(shown, "YEAR_MONTH_FORMAT")),
            },
            "choices": [{"title": capfirst(formats.date_format(shown, "MONTH_DAY_FORMAT"))}],
        }
    if year and month:
        m = int(month)
        days = [d for d in range(1, calendar.monthrange(y, m)[1] + 1) if dates.holds(y, m, d)]
        return {
            "show": True,
            "back": {"link": link({f"{field}__year": year}), "title": year},
            "choices": [
                {
                    "link": link({f"{field}__year": year, f"{field}__month": month, f"{field}__day": d}),
                    "title": capfirst(formats.date_format(datetime(y, m, d), "MONTH_DAY_FORMAT")),
                }
                for d in days
            ],
        }
    months = [m for m in range(1, 13) if dates.holds(y, m)]
    return {
        "show": True,
        "back": {"link": link({}), "title": "All dates"},
        "choices": [
            {
                "link": link({f"{field}__year": year, f"{field}__month": m}),
                "title": capfirst(formats.date_format(datetime(y, m, 1), "YEAR_MONTH_FORMAT")),
            }
            for m in months
        ],
    }


class Dates:
    """Which years, months and days of a changelist's date field hold rows.

    A short list (counted exactly, at most READ_ONCE_LIMIT rows) is read once and
    answered from memory: for a narrow search the planner would otherwise walk the
    date index looking for the few matches. A longer list is dense enough for the
    index probes to find a row at once.
    """

    def __init__(self, cl: ChangeList) -> None:
        self.queryset: QuerySet[Any] = cl.queryset
        self.field: str = cl.date_hierarchy
        self.known: set[tuple[int, ...]] | None = None
        self.moments: list[datetime] = []
        if not getattr(cl.paginator, "estimated", True) and cl.result_count <= READ_ONCE_LIMIT:
            moments = [timezone.localtime(v) for v in self.queryset.order_by().values_list(self.field, flat=True) if v]
            self.moments = sorted(moments)
            self.known = {key for v in moments for key in ((v.year,), (v.year, v.month), (v.year, v.month, v.day))}

    def bounds(self) -> tuple[datetime, datetime] | None:
        """Return the first and last moments of the list (local time), or None when it is empty."""
        if self.known is not None:
            return (self.moments[0], self.moments[-1]) if self.moments else None
        found = self.queryset.aggregate(first=Min(self.field), last=Max(self.field))
        if found["first"] is None or found["last"] is None:
            return None
        return timezone.localtime(found["first"]), timezone.localtime(found["last"])

    def holds(self, year: int, month: int | None = None, day: int | None = None) -> bool:
        """Return whether the list has a row in that year, month or day."""
        parts = tuple(part for part in (year, month, day) if part is not None)
        if self.known is not None:
            return parts in self.known
        start = _start(*parts)
        if day is not None:
            end = start + timedelta(days=1)
        elif month is not None:
            end = _start(year + month // 12, month % 12 + 1)
        else:
            end = _start(year + 1)
        return self.queryset.filter(**{f"{self.field}__gte": start, f"{self.field}__lt": end}).exists()


def _start(year: int, month: int = 1, day: int = 1) -> datetime:
    return timezone.make_aware(datetime(year, month, day))
