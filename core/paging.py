"""A changelist paginator for tables of millions of rows: it never counts a whole table.

Up to `exact_limit` matching rows are counted exactly, with a count that stops at the
limit (`SELECT COUNT(*) FROM (... LIMIT n)`). Past it, the count is PostgreSQL's
planner estimate for the same query (the changelist says "about … (an estimate)"; SQLite, the
embedded local database, has none and counts exactly), and only the first
`max_pages` pages can be opened: a deeper OFFSET would scan what the count avoided.
Narrow the list with a filter, a date or a search instead.
"""

from __future__ import annotations

import json
import math
from typing import Any, cast

from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.utils.functional import cached_property


class LedgerPaginator(Paginator[Any]):
    exact_limit = 10_000
    max_pages = 200  # with the admin's 50 rows a page: the first 10,000 rows, as far as the exact count goes
    estimated = False

    @cached_property
    def count(self) -> int:
        """Return the exact count up to `exact_limit`, else the planner's estimate (at least the limit)."""
        queryset = cast(QuerySet[Any], self.object_list)
        bounded: int = queryset.order_by()[: self.exact_limit + 1].count()
        if bounded <= self.exact_limit:
            return bounded
        if connections[queryset.db].vendor != "postgresql":
            # No planner estimate to give (SQLite: the local, embedded database): count them all.
            return queryset.order_by().count()
        self.estimated = True
        return max(bounded, planner_estimate(queryset))

    @cached_property
    def num_pages(self) -> int:
        """Return the number of pages that can be opened (at most `max_pages`)."""
        if self.count == 0 and not self.allow_empty_first_page:
            return 0
        hits = max(1, self.count - self.orphans)
        return min(math.ceil(hits / self.per_page), self.max_pages)


def planner_estimate(queryset: QuerySet[Any]) -> int:
    """Return the planner's row estimate for `queryset` (PostgreSQL), or 0 where there is none."""
    connection = connections[queryset.db]
    if connection.vendor != "postgresql":
        return 0
    sql, params = queryset.order_by().query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        row = cursor.fetchone()
    plan = json.loads(row[0]) if isinstance(row[0], str) else row[0]
    return int(plan[0]["Plan"]["Plan Rows"])
