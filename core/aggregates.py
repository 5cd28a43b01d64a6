"""Percentiles in SQL: PostgreSQL's `percentile_disc`, with a portable fallback for SQLite."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from django.db import NotSupportedError, connections
from django.db.models import Aggregate, QuerySet
from django.db.models.sql.compiler import SQLCompiler


class PercentileDisc(Aggregate):
    """`percentile_disc(fraction) WITHIN GROUP (ORDER BY expression)`: the first value at or past `fraction`.

    Discrete, so the answer is always an observed value, and the offset fallback
    below gives exactly the same answer on databases without ordered-set aggregates.
    """

    function = "PERCENTILE_DISC"
    name = "PercentileDisc"
    template = "%(function)s(%(fraction)s) WITHIN GROUP (ORDER BY %(expressions)s)"

    def __init__(self, expression: Any, *, fraction: float, **extra: Any) -> None:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction {fraction!r} must be between 0 and 1, e.g. 0.95 for p95")
        # A validated float, formatted by Python: safe to place in the SQL text.
        super().__init__(expression, fraction=repr(float(fraction)), **extra)

    def as_sqlite(self, compiler: SQLCompiler, connection: Any, **extra_context: Any) -> Any:
        raise NotSupportedError("percentile_disc needs PostgreSQL; use percentiles(), which falls back to offsets")


def percentiles(queryset: QuerySet[Any], field: str, fractions: Sequence[float]) -> dict[float, Any]:
    """Return {fraction: value} of `field` over `queryset` (None when it is empty).

    One aggregate query on PostgreSQL; elsewhere a count, then one ordered,
    offset query per fraction.
    """
    if connections[queryset.db].vendor == "postgresql":
        row = queryset.aggregate(
            **{f"p{index}": PercentileDisc(field, fraction=f) for index, f in enumerate(fractions)}
        )
        return {fraction: row[f"p{index}"] for index, fraction in enumerate(fractions)}
    return percentiles_by_offset(queryset, field, fractions)


def percentiles_by_offset(queryset: QuerySet[Any], field: str, fractions: Sequence[float]) -> dict[float, Any]:
    """Return the same answer as `percentiles`, from counted offsets into the ordered values."""
    queryset = queryset.filter(**{f"{field}__isnull": False})  # As percentile_disc, ignore NULLs.
    count = queryset.count()
    ordered = queryset.order_by(field).values_list(field, flat=True)
    result: dict[float, Any] = {}
    for fraction in fractions:
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"fraction {fraction!r} must be between 0 and 1, e.g. 0.95 for p95")
        # percentile_disc's definition: the value at 1-based position ceil(fraction × count), at least the first.
        result[fraction] = ordered[max(math.ceil(fraction * count), 1) - 1] if count else None
    return result


def percentiles_by(
    queryset: QuerySet[Any], group: str, field: str, fractions: Sequence[float]
) -> dict[Any, dict[float, Any]]:
    """Return {group value: {fraction: value}} of `field` for each value of `group` in `queryset`.

    One grouped aggregate query on PostgreSQL; elsewhere `percentiles_by_offset` per group.
    """
    if connections[queryset.db].vendor == "postgresql":
        rows = (
            queryset.order_by()
            .values(group)
            .annotate(**{f"p{index}": PercentileDisc(field, fraction=f) for index, f in enumerate(fractions)})
        )
        return {row[group]: {f: row[f"p{index}"] for index, f in enumerate(fractions)} for row in rows}
    groups = queryset.order_by().values_list(group, flat=True).distinct()
    return {value: percentiles_by_offset(queryset.filter(**{group: value}), field, fractions) for value in groups}
