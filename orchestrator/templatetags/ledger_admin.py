"""Changelist pieces for big ledgers: an honest result count, and a date drill-down without full scans."""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta
from typing import Any

from django import template
from django.contrib.admin.templatetags.admin_list import pagination
from django.contrib.admin.views.main import ChangeList
from django.db.models import Max, Min, QuerySet
from django.utils import formats, timezone
from django.utils.safestring import SafeString
from django.utils.text import capfirst

from orchestrator.display import badge

register = template.Library()


@register.filter
def status_badge(value: str) -> SafeString:
    """Render a status, mode or resolution as a coloured badge."""
    return badge(value)


@register.inclusion_tag("admin/orchestrator/pagination.html")
def ledger_pagination(cl: ChangeList) -> dict[str, Any]:
    """Render the page links, and the result count ("about N" when it is the planner's estimate)."""
    return pagination(cl)


@register.inclusion_tag("admin/date_hierarchy.html")
def ledger_date_hierarchy(cl: ChangeList) -> dict[str, Any]:
    """Return the admin's date drill-down, found with index probes instead of a DISTINCT over every row.

    Django's own drill-down lists the years, months or days that hold rows with a
    `SELECT DISTINCT date_trunc(...)` over the whole filtered table. Here the first
    and last dates come from MIN and MAX, and each candidate year, month or day is
    probed with an EXISTS on its range: a few dozen index lookups at most.
    """
    field = cl.date_hierarchy
    year, month, day = (cl.params.get(f"{field}__{part}") for part in ("year", "month", "day"))
    queryset = cl.queryset

    def link(filters: dict[str, Any]) -> str:
        return str(cl.get_query_string(filters, [f"{field}__"]))

    if not (year or month or day):
        bounds = queryset.aggregate(first=Min(field), last=Max(field))
        if bounds["first"] is None or bounds["last"] is None:
            return {"show": True, "back": None, "choices": []}
        first, last = timezone.localtime(bounds["first"]), timezone.localtime(bounds["last"])
        if first.year != last.year:
            years = [y for y in range(first.year, last.year + 1) if _holds(queryset, field, _start(y), _start(y + 1))]
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
        days = [
            d
            for d in range(1, calendar.monthrange(y, m)[1] + 1)
            if _holds(queryset, field, _start(y, m, d), _start(y, m, d) + timedelta(days=1))
        ]
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
    months = [m for m in range(1, 13) if _holds(queryset, field, _start(y, m), _start(y + m // 12, m % 12 + 1))]
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


def _start(year: int, month: int = 1, day: int = 1) -> datetime:
    return timezone.make_aware(datetime(year, month, day))


def _holds(queryset: QuerySet[Any], field: str, start: datetime, end: datetime) -> bool:
    return queryset.filter(**{f"{field}__gte": start, f"{field}__lt": end}).exists()
