"""The event metrics' plumbing: counted once their event commits, and gathered across processes for `/metrics`.

Each app declares its counters and histograms (`dispatch.metrics`, `jobs.metrics`,
`runs.metrics`) with prometheus-client, in the default registry. With
PROMETHEUS_MULTIPROC_DIR set (gunicorn.conf.py sets one for the web process), every
process writes its values to files there and `/metrics` sums them: prometheus-client's
multiprocess mode. When that directory is removed under a running process, the process
counts in its memory from then on rather than fail the work it counts (`metrics_lost`).
Why in-process counters rather than rows, and what a lost directory costs:
docs/operations.md, "Metrics".
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.db import transaction
from prometheus_client import REGISTRY, values
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

logger = logging.getLogger(__name__)

_lost = threading.Event()  # set once this process has lost its metrics directory
_losing = threading.Lock()


def after_commit(count: Callable[[], object]) -> None:
    """Call `count` once the current transaction commits (at once outside one); never let it raise.

    A metric counts what happened: an event rolled back (a group of jobs rolled back and
    run again, a tick's transaction undone) is not counted, and one committed is counted once.
    """
    transaction.on_commit(count, robust=True)


def metrics_files_guard() -> None:
    """In multiprocess mode, keep a metric in this process's memory when its file cannot be made.

    prometheus-client opens a process's file for a type of metric (counter, histogram,
    gauge) when the first value of that type is made; with the directory gone that raises
    FileNotFoundError from inside whatever counted, a tick or a job's commit. Called once,
    at start-up, before any value is made.
    """
    in_file = values.ValueClass
    if not getattr(in_file, "_multiprocess", False):
        return
    # A process that starts without its directory (cleaned while the service was down) makes it: nothing of
    # this process is there to lose yet. One it cannot make is lost at the first count.
    with contextlib.suppress(OSError):
        os.makedirs(settings.PROMETHEUS_MULTIPROC_DIR, exist_ok=True)

    def value(*args: Any, **kwargs: Any) -> Any:
        try:
            return in_file(*args, **kwargs)
        except OSError as exc:  # the directory removed (a temporary-files cleaner), or its disk full
            metrics_lost(exc)
            return values.MutexValue(*args, **kwargs)  # type: ignore[no-untyped-call]

    values.ValueClass = value


def metrics_lost(error: BaseException) -> None:
    """Count in this process's memory from now on, and say so once: the metrics directory cannot be used."""
    with _losing:
        if _lost.is_set():
            return
        values.ValueClass = values.MutexValue
        _lost.set()
    logger.warning(
        "the metrics directory cannot be used: this process counts in its memory from now on, and its /metrics "
        "answers its own counts only; keep temporary-files cleaners off the directory and restart the processes",
        extra={"action": "metrics_lost", "directory": settings.PROMETHEUS_MULTIPROC_DIR, "error": str(error)},
    )


class FilesCollector(Collector):
    """Every process's metrics, summed from the files in `path`; this process's own once the directory is gone."""

    def __init__(self, path: str) -> None:
        self.path = path

    def collect(self) -> Iterable[Metric]:
        if _lost.is_set():  # its counts are in its memory now, whatever the directory holds
            return REGISTRY.collect()
        if not os.path.isdir(self.path):
            metrics_lost(FileNotFoundError(f"no directory {self.path}"))
            return REGISTRY.collect()
        try:
            collected: list[Metric] = MultiProcessCollector(None, path=self.path).collect()  # type: ignore[no-untyped-call]
        except FileNotFoundError as exc:  # a file removed between the listing and its reading
            metrics_lost(exc)
            return REGISTRY.collect()
        return collected


def events_collector() -> Collector:
    """Return what collects the event metrics: every process's files in multiprocess mode, else this process's."""
    path = settings.PROMETHEUS_MULTIPROC_DIR
    return FilesCollector(path) if path else REGISTRY
