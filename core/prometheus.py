"""The event metrics' plumbing: counted once their event commits, and gathered across processes for `/metrics`.

Each app declares its counters and histograms (`dispatch.metrics`, `jobs.metrics`,
`runs.metrics`) with prometheus-client, in the default registry. With
PROMETHEUS_MULTIPROC_DIR set (gunicorn.conf.py sets one for the web process), every
process writes its values to files there and `/metrics` sums them: prometheus-client's
multiprocess mode. Why in-process counters rather than rows: docs/operations.md, "Metrics".
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.db import transaction
from prometheus_client import REGISTRY
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector, CollectorRegistry


def after_commit(count: Callable[[], object]) -> None:
    """Call `count` once the current transaction commits (at once outside one); never let it raise.

    A metric counts what happened: an event rolled back (a group of jobs run again, a
    tick's transaction undone) is not counted, and one committed is counted once.
    """
    transaction.on_commit(count, robust=True)


def events_collector() -> Collector:
    """Return what collects the event metrics: every process's files in multiprocess mode, else this process's."""
    path = settings.PROMETHEUS_MULTIPROC_DIR
    if not path:
        return REGISTRY
    registry = CollectorRegistry(auto_describe=False)
    MultiProcessCollector(registry, path=path)  # type: ignore[no-untyped-call]
    return registry
