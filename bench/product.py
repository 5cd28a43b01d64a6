"""Every name the benchmarks take from Orchestrator's own code, in one place.

The benchmarks drive the product through a handful of entry points; when a module
moves, this file (and `bench_settings.py`, which extends the product's settings)
is the one to update. Functions import lazily: most need Django set up first.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))  # the product's packages, after bench/ itself

# The product's settings module (bench_settings.py extends it) and its tables, for
# the SQL the benchmarks run themselves (seeding, counting, the dispatch floor).
SETTINGS = "orchestrator.settings"
JOBS_TABLE = "jobs_backgroundjob"
WINDOWS_TABLE = "dispatch_dispatchwindow"
NOOP_KIND = "demo.noop"  # a registered handler that does nothing
# The index of the due jobs (jobs/models.py): its write cost is measured by dropping it from a copy of the schema.
DUE_INDEX = "jobs_due_idx"


def jobs_run(*, budget_seconds: float, batch_size: int | None, concurrency: int | None) -> dict[str, Any]:
    """Drain the queue once, as `manage.py run_jobs` does; return its JSON summary."""
    from jobs.runner import jobs_run as run

    summary = run(budget_seconds=budget_seconds, batch_size=batch_size, concurrency=concurrency)
    result: dict[str, Any] = summary.as_json()
    return result


def job_enqueue(*, kind: str, now: datetime, payload: dict[str, Any]) -> None:
    """Enqueue one job through the product's service (the call behind `POST /api/jobs`)."""
    from jobs.services import job_enqueue as enqueue

    enqueue(kind=kind, now=now, payload=payload)


def job_handler(kind: str) -> Callable[[Callable[[Any], Any]], Callable[[Any], Any]]:
    """Return the decorator that registers a job handler for `kind`."""
    from jobs.registry import job_handler as register

    return register(kind)


def url_patterns() -> list[Any]:
    """Return the product's URLconf (the bench URLconf adds its floor view to it)."""
    from orchestrator.urls import urlpatterns

    return list(urlpatterns)


def event_api(*, event_key: str) -> Any:
    """Return the loopback Inngest event API (a context manager; `.url`, `.requests`, `.behave()`)."""
    from testsupport.event_api import EventAPI

    return EventAPI(event_key=event_key)
