"""How an idle `run_jobs --loop` worker waits for work: woken by NOTIFY when a job becomes pending, else it polls.

The jobs table's trigger (migration 0006) sends `NOTIFY orchestrator_jobs, '<queue>'`
in the transaction that makes a job pending, so a standing worker LISTENs on a
connection of its own and drains as soon as such a transaction commits. It also
wakes without a notification:

- at the earliest `run_after` of the pending jobs (a delayed job, a retry's backoff),
  looked up each time it goes idle;
- when one of its chores is due (jobs.chores: an expired lease to take back);
- after JOBS_POLL_SECONDS in any case, for a notification that never came (sent
  while the listening connection was being replaced, or lost behind a connection
  pooler in transaction mode, where LISTEN does not work: set JOBS_LISTEN=false
  there, and the worker polls).

Before each drain the worker reads, without waiting, the notifications received so
far: the drain finds the jobs they announce, and a worker kept busy still reads its
connection (else they would pile up, and wake it for nothing once idle).

The listening connection fails like any other when the database restarts (a
Django OperationalError): the worker closes it with its other connections and
LISTENs again once it reconnects, then drains before it waits, so nothing enqueued
meanwhile waits for a poll. On SQLite the worker polls.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime
from types import TracebackType
from typing import Literal

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, Error, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import Min

from jobs.models import BackgroundJob

logger = logging.getLogger(__name__)

CHANNEL = "orchestrator_jobs"  # the trigger's channel (jobs/migrations/0006_notify_trigger.py)
STOP_CHECK_SECONDS = 0.25  # how soon a waiting worker notices that it was asked to stop
Wake = Literal["notified", "due", "chores", "poll", "stopped"]


class Waker:
    """Wait, while idle, for a job of `queue` (every queue when None) to become pending or due."""

    def __init__(self, *, queue: str | None) -> None:
        self.queue = queue
        self.listening = settings.JOBS_LISTEN and connection.vendor == "postgresql"
        self._own: BaseDatabaseWrapper | None = None

    def listen(self) -> None:
        """LISTEN on a connection of the waker's own, unless it already does (call it before each drain)."""
        if not self.listening or self._own is not None:
            return
        own = connections.create_connection(DEFAULT_DB_ALIAS)  # autocommit, not shared
        try:
            own.ensure_connection()
            with own.wrap_database_errors:
                own.connection.execute(f"LISTEN {CHANNEL}")
        except Error:
            own.close()
            raise
        self._own = own
        logger.info("worker listening for jobs", extra={"action": "worker_listen", "channel": CHANNEL})

    def read_notifications(self) -> int:
        """Read the notifications received so far, without waiting; return how many (0 when not listening).

        Call it just before a drain, which finds every job they announce. A busy worker
        never waits, so without this it would never read them: they would pile up in
        its connection's buffers, then in PostgreSQL's cluster-wide notification queue,
        and wake it for nothing once it is idle.
        """
        if self._own is None:
            return 0
        own, read = self._own, 0
        try:
            with own.wrap_database_errors:
                while received := list(own.connection.notifies(timeout=0)):
                    read += len(received)
        except Error:
            self.close()
            raise
        return read

    def wait(self, *, stop: threading.Event, now: datetime, chores_in: float | None = None) -> Wake:
        """Return when a job may be due, or in `chores_in` seconds (and why); "stopped" as soon as `stop` is set."""
        timeout, reason = float(settings.JOBS_POLL_SECONDS), "poll"
        earliest = _earliest_pending(self.queue)
        if earliest is not None and (earliest - now).total_seconds() < timeout:
            timeout, reason = max(0.0, (earliest - now).total_seconds()), "due"
        if chores_in is not None and chores_in < timeout:
            timeout, reason = chores_in, "chores"
        deadline = time.monotonic() + timeout
        logger.debug("worker idle", extra={"action": "worker_wait", "seconds": round(timeout, 3), "until": reason})
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                logger.debug("worker woke", extra={"action": "worker_wake", "reason": reason})
                return reason  # type: ignore[return-value]
            if self._notified(min(remaining, STOP_CHECK_SECONDS), stop=stop):
                logger.debug("worker woke", extra={"action": "worker_wake", "reason": "notified"})
                return "notified"
        return "stopped"

    def close(self) -> None:
        """Close the listening connection, if one is open (the next listen() opens a new one)."""
        if self._own is not None:
            self._own.close()
            self._own = None

    def __enter__(self) -> Waker:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def _notified(self, seconds: float, *, stop: threading.Event) -> bool:
        """Wait up to `seconds` for a notification about this worker's queue (not listening: for `stop`)."""
        if self._own is None:
            stop.wait(seconds)
            return False
        own = self._own
        try:
            with own.wrap_database_errors:
                notices = list(own.connection.notifies(timeout=seconds, stop_after=1))
        except Error:
            self.close()
            raise
        return any(self.queue is None or notice.payload == self.queue for notice in notices)


def _earliest_pending(queue: str | None) -> datetime | None:
    pending = BackgroundJob.objects.filter(status=BackgroundJob.Status.PENDING)
    earliest: datetime | None = (pending if queue is None else pending.filter(queue=queue)).aggregate(
        earliest=Min("run_after")
    )["earliest"]
    return earliest
