"""Drain requests: in dispatch mode, a job enqueued to run now starts within a second or two, not at the next window.

Without a standing worker the queue is drained by Inngest runs of
`process-background-jobs`, once per cron window. So when a job is enqueued to run
now (the jobs layer tells this one through its `jobs_due` hook), this module asks
Inngest for a drain of its own: the event `background/drain.requested` with the
dispatch key `drain:background-jobs:<UTC second>` and the event id
`background/drain.requested:<dispatch key>`, both deterministic per second, which
runs the function `drain-background-jobs`. That function is built as every other
(runs.functions): idempotency on the dispatch key, concurrency 1, its run recorded
in the run ledger (one run per key), its drain in bounded steps. The window
functions are left as they are (no debounce, no batching): their exactly-once
guarantees do not change.

- The request is published after the enqueuing transaction commits (nothing is
  asked for a job that was rolled back), by one thread of the process's own, so
  the enqueue never waits for the event API.
- At most one request per process per second: every enqueue in the second after
  the first is covered by that drain (and processes that request the same second
  send the same event id, which Inngest deduplicates). While the event API hangs,
  the requests wait one a second, and those older than a minute when their turn
  comes are dropped: the thread's backlog stays bounded, and enqueue stays fast.
- A publish that fails is logged (a warning, `drain_request`) and not retried: the
  next window's drain runs the job.
- Only when the built-in job dispatches to Inngest (its flag, or publishing
  configured), within the canary's share (BACKGROUND_JOBS_INNGEST_PERCENT, by the
  second's key); never inline (`BACKGROUND_JOBS_FORCE_INLINE`).
"""

from __future__ import annotations

import logging
import os
import queue
import re
import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import inngest
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from core.inngest import InngestConfig, client_for, current_config
from core.timefmt import iso_utc
from dispatch import keys, modes
from dispatch.publish import PublishError, publish_events
from dispatch.registry import BACKGROUND_JOBS, BUILTIN, WorkUnit

logger = logging.getLogger(__name__)

DRAIN_FUNCTION = "drain-background-jobs"
DRAIN_EVENT = "background/drain.requested"
DRAIN_UNIT = WorkUnit(DRAIN_FUNCTION, DRAIN_EVENT, "runs.units.process_jobs")
SOURCE = "enqueue"
_KEY_RE = re.compile(rf"drain:{BACKGROUND_JOBS}:([0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}T[0-9]{{2}}:[0-9]{{2}}:[0-9]{{2}})")
# A request older than this when its turn comes is dropped: the window's own drain has run since.
STALE = timedelta(seconds=60)
# A drain key may name a second this far ahead of the function's clock (the enqueuing host's may run ahead).
MAX_AHEAD = timedelta(seconds=60)


def drain_key(second: datetime) -> str:
    """Return the dispatch key of the drain requested in `second` (UTC): `drain:background-jobs:<second>`."""
    second = second.astimezone(UTC)
    return f"drain:{BACKGROUND_JOBS}:{second.year:04d}-{second:%m-%dT%H:%M:%S}"


def drain_key_problem(key: str, *, now: datetime) -> str:
    """Return why `key` names no drain that may run at `now`, or "" when it does."""
    match = _KEY_RE.fullmatch(key)
    if match is None:
        return f"is not a drain key (expected drain:{BACKGROUND_JOBS}:YYYY-MM-DDTHH:MM:SS in UTC)"
    try:
        second = datetime.strptime(match[1], "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return "names no second"
    if second > now + MAX_AHEAD:
        return "names a second more than a minute ahead"
    return ""


def drain_request(*, now: datetime) -> None:
    """Ask Inngest for a drain in `now`'s second, once the current transaction commits (the jobs_due hook)."""
    if settings.BACKGROUND_JOBS_FORCE_INLINE or not modes.dispatch_enabled(BUILTIN):
        return
    second = now.astimezone(UTC).replace(microsecond=0)
    if not modes.canary_selected(drain_key(second)):
        return
    config = current_config()  # the settings of the enqueue, not of whenever the thread gets to it
    transaction.on_commit(lambda: _publisher().submit(second, config))


def drain_event(second: datetime) -> inngest.Event:
    """Return the drain event of `second`, its id and payload deterministic but for the correlation id."""
    key = drain_key(second)
    data: dict[str, Any] = {
        "source": SOURCE,
        "requestedAt": iso_utc(second),
        "dispatchKey": key,
        "correlationId": str(uuid.uuid4()),
        "dispatchWindowStart": iso_utc(second),
        "dispatchWindowSeconds": 1,
    }
    return inngest.Event(name=DRAIN_EVENT, id=keys.event_id(DRAIN_EVENT, key), data=data)


class _Publisher:
    """The process's drain-request thread: publishes each second's request once, in order, bounded."""

    def __init__(self) -> None:
        self._seconds: queue.SimpleQueue[tuple[datetime, InngestConfig]] = queue.SimpleQueue()
        self._queued: datetime | None = None  # the last second queued: one entry a second at most
        self._last: datetime | None = None
        self._lock = threading.Lock()
        self.published = 0  # requests sent and accepted (for tests and the log)
        self._thread = threading.Thread(target=self._run, name="drain-requests", daemon=True)
        self._thread.start()

    def submit(self, second: datetime, config: InngestConfig) -> None:
        with self._lock:
            if second == self._queued:
                return
            self._queued = second
        self._seconds.put((second, config))

    def _run(self) -> None:
        while True:
            second, config = self._seconds.get()
            if second == self._last or second < timezone.now() - STALE:
                continue  # asked for already, or so long ago (the event API hung) that a window has drained since
            self._last = second
            try:
                self._publish(second, config)
            except Exception:  # The thread serves every later request: log what went wrong, and go on.
                logger.exception("drain request failed", extra={"action": "drain_request"})

    def _publish(self, second: datetime, config: InngestConfig) -> None:
        event = drain_event(second)
        try:
            client = client_for(config)
            publish_events([event], client=client, timeout=settings.INNGEST_PUBLISH_TIMEOUT_SECONDS)
        except PublishError as exc:
            logger.warning(
                "drain request not published: the next window's drain runs the job",
                extra={"action": "drain_request", "dispatchKey": event.data["dispatchKey"], "error": str(exc)},
            )
            return
        self.published += 1
        logger.debug("drain requested", extra={"action": "drain_request", "dispatchKey": event.data["dispatchKey"]})


_publishers: dict[int, _Publisher] = {}
_publishers_lock = threading.Lock()


def _publisher() -> _Publisher:
    """Return this process's publisher thread (a forked child starts its own)."""
    with _publishers_lock:
        publisher = _publishers.get(os.getpid())
        if publisher is None:
            publisher = _publishers[os.getpid()] = _Publisher()
        return publisher
