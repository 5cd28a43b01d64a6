"""Future jobs cost nothing: what an idle worker and a scrape ask of the queue reads only the due jobs' entries.

The plans are asserted, not timings: each statement that reads the job table is
served by `jobs_due_idx`, never by a sequential scan or a full read of the claim
index (docs/jobs.md, "Jobs for later").
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from jobs.claim import claim_batch, ready_backlog
from jobs.health import queue_due_measure
from jobs.models import BackgroundJob
from jobs.waker import Waker

pytestmark = pytest.mark.django_db

FUTURE = 5_000  # pending jobs due tomorrow: a sample of the million the index is for
DUE = 10
TABLE = BackgroundJob._meta.db_table
STOPPED = threading.Event()
STOPPED.set()  # the waker looks up the next due job, then returns at once


@pytest.fixture
def tomorrow_waits(now: datetime) -> None:
    """FUTURE pending jobs due tomorrow and DUE jobs due now, all in the `emails` queue, with fresh statistics."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {TABLE} (tenant, kind, payload, status, priority, attempts, max_attempts, run_after, "  # noqa: S608
            "locked_by, last_error, created_at, queue) "
            "SELECT '', 'test.record', '{}', 'pending', n %% 3, 0, 5, "
            "CASE WHEN n <= %s THEN %s - interval '1 minute' ELSE %s + interval '1 day' + n * interval '1 ms' END, "
            "'', '', %s, 'emails' FROM generate_series(1, %s) AS n",
            [DUE, now, now, now, FUTURE + DUE],
        )
        cursor.execute(f"ANALYZE {TABLE}")


def indexes_read(sql: str) -> list[str]:
    """Return how the plan of `sql` reads the job table: each scan's index, in plan order ("Seq Scan" for none)."""
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}")
        [[document]] = cursor.fetchall()
    plan = (json.loads(document) if isinstance(document, str) else document)[0]["Plan"]
    return [node.get("Index Name", node["Node Type"]) for node in _scans(plan)]


def _scans(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    if plan.get("Relation Name") == TABLE and "Scan" in plan["Node Type"]:
        yield plan
    for child in plan.get("Plans", []):
        yield from _scans(child)


@pytest.mark.usefixtures("tomorrow_waits")
@pytest.mark.parametrize(
    ("name", "ask"),
    [
        ("the claim", lambda now: claim_batch(now=now, limit=100, worker="w")),
        ("the claim of one queue", lambda now: claim_batch(now=now, limit=100, worker="w", queue="emails")),
        ("the backlog left", lambda now: ready_backlog(now=now)),
        ("the backlog of one queue", lambda now: ready_backlog(now=now, queue="emails")),
        ("the waker's next due job", lambda now: Waker(queue=None).wait(stop=STOPPED, now=now)),
        ("the waker's next due job of one queue", lambda now: Waker(queue="emails").wait(stop=STOPPED, now=now)),
        ("the backlog and the lag (/metrics, queue health)", lambda now: queue_due_measure(now=now)),
    ],
)
def test_idle_poll__reads_only_the_due_jobs_index(now: datetime, name: str, ask: Callable[[datetime], object]) -> None:
    with CaptureQueriesContext(connection) as queries:
        ask(now)

    statements = [query["sql"] for query in queries.captured_queries if TABLE in query["sql"]]
    assert statements, name
    for sql in statements:
        # The due jobs are found in jobs_due_idx; a claim then updates each by its primary key.
        assert set(indexes_read(sql)) in ({"jobs_due_idx"}, {"jobs_due_idx", "jobs_backgroundjob_pkey"}), (name, sql)


def test_claim__a_backlog_is_still_claimed_in_priority_order_from_the_claim_index(now: datetime) -> None:
    BackgroundJob.objects.bulk_create(
        BackgroundJob(kind="test.record", priority=n % 3, run_after=now - timedelta(seconds=n), created_at=now)
        for n in range(4000)
    )
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {TABLE}")
    with CaptureQueriesContext(connection) as queries:
        claimed = claim_batch(now=now, limit=100, worker="w")

    [sql] = [query["sql"] for query in queries.captured_queries]
    assert indexes_read(sql)[0] == "jobs_claim_idx"  # the due jobs in claim order, the scan stopping at 100
    assert [job.priority for job in claimed] == [2] * 100
