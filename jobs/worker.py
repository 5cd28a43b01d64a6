"""The worker behind `manage.py run_jobs`: drains (in a loop, with --loop) and stops cleanly on a signal.

On SIGTERM or SIGINT the worker stops claiming, lets the running handler finish
within a grace, gives every claimed-but-unstarted job back without spending its
attempt, prints the drain's summary and exits 0. A handler still running when the
grace ends (or at a second signal) is given up on: the process exits, the
handler's transaction rolls back, and once its lease expires maintenance returns
the job (the attempt is spent: the handler did start). The process exits 0 then, or 1
when the unstarted claims could not be given back (the database unreachable):
maintenance returns those too, their attempt not spent.

The drains run on the main thread; a watcher thread takes the signals and does
the waiting, so a handler is never interrupted (mid-commit or anywhere else).

Idle, a --loop worker waits for a job to become pending or due (jobs.waker:
LISTEN/NOTIFY, the earliest delayed job, and a poll).

With --loop the worker outlives its database's restarts and failovers: a lost
connection costs a log line; the connections are closed and made again after a
capped exponential backoff (from its minimum again after each outage), and as soon
as the database answers the worker takes back the claims of the drain that failed
(jobs.recovery): those it had not started go back to the queue, those it had started
lost their attempt, recorded on the job, and are due again at once. A database it
cannot reach at its start ends it at once (manage.py says which database, and why,
on one line): a wrong DATABASE_URL is not retried forever.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from django.db import Error, connection, connections
from django.utils import timezone

from core.database import CONNECTION_ERRORS
from core.errors import one_line
from jobs.backoff import reconnect_delays
from jobs.chores import WorkerChores
from jobs.claim import release_unstarted
from jobs.lease import kept_for_this_thread
from jobs.models import BackgroundJob
from jobs.recovery import claims_take_back
from jobs.runner import Progress, RunSummary, jobs_run, process_prefix
from jobs.waker import Waker

logger = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)
DEFAULT_GRACE_SECONDS = 25.0  # below the 30 s most process managers wait before SIGKILL


@dataclass
class Worker:
    """Drain with `budget_seconds` per drain, once or (with `loop`) until stopped; `emit` prints each summary."""

    budget_seconds: float
    batch_size: int | None
    concurrency: int | None
    queue: str | None
    loop: bool
    grace_seconds: float
    emit: Callable[[RunSummary], None]
    chores: WorkerChores | None = None  # with --loop: lease recovery as leases expire, the reconciler every few minutes
    stop: threading.Event = field(default_factory=threading.Event, init=False)
    _current: Progress | None = field(default=None, init=False)
    _lost: _LostClaims | None = field(default=None, init=False)  # a drain's claims, lost with its connection
    _ending: threading.Lock = field(default_factory=threading.Lock, init=False)  # emitting a summary, or giving up
    _done: bool = field(default=False, init=False)

    def run(self) -> None:
        """Drain until done or stopped by SIGTERM/SIGINT (call it on the main thread).

        A database that cannot be reached at the start raises: the reconnects are for
        one lost once the worker runs, not for a wrong DATABASE_URL.
        """
        connection.ensure_connection()
        delays, outage = reconnect_delays(), False
        summary = RunSummary()  # the last drain's, printed again when the worker is stopped while it waits
        with (
            _SignalWatcher(grace_seconds=self.grace_seconds, stop=self.stop, give_up=self._give_up),
            Waker(queue=self.queue) as waker,
            kept_for_this_thread() as lease,
        ):
            while not self.stop.is_set():
                try:
                    if self.loop:
                        waker.listen()  # before the drain: a job enqueued after it looked is notified
                        waker.read_notifications()  # of jobs the drain finds: read even when never idle
                    if outage:  # the database answers again
                        if self._lost is not None:
                            self._lost.take_back()
                            self._lost = None
                        outage, delays = False, reconnect_delays()  # the next outage backs off from the start
                    if self.chores is not None:
                        self.chores.run_if_due(now=timezone.now())
                    summary = self._drain()
                    with self._ending:
                        self.emit(summary)
                        self._done = not self.loop or self.stop.is_set()
                    if self._done:
                        return
                    if summary.claimed == 0:
                        waker.wait(stop=self.stop, now=timezone.now(), chores_in=self._chores_in())
                except CONNECTION_ERRORS as exc:
                    if not self.loop:
                        raise
                    outage, delay = True, next(delays)
                    logger.warning(
                        "database connection lost: reconnecting",
                        extra={"action": "worker_reconnect", "error": one_line(exc), "retryInSeconds": delay},
                    )
                    waker.close()
                    lease.close()
                    connections.close_all()
                    self.stop.wait(delay)
            with self._ending:  # stopped while waiting for work, or for the database
                if not self._done:
                    self.emit(summary if self._lost is None or self._current is None else self._current.summary())
                    self._done = True

    def _drain(self) -> RunSummary:
        self._current = progress = Progress()
        try:
            return jobs_run(
                budget_seconds=self.budget_seconds,
                batch_size=self.batch_size,
                concurrency=self.concurrency,
                queue=self.queue,
                stop=self.stop,
                progress=progress,
            )
        except CONNECTION_ERRORS as exc:
            self._lost = self._lost or _LostClaims(error=exc, lost_at=timezone.now())
            self._lost.claims.update((job.pk, job) for job in progress.claims())
            raise

    def _chores_in(self) -> float | None:
        return None if self.chores is None else self.chores.due_in()

    def _give_up(self) -> None:
        """Give back the unstarted claims, print what the drain did so far, and end the process now.

        The process ends whatever happens on the way: with status 0 once the claims
        are given back, 1 when they could not be (lease recovery returns them later).
        """
        with self._ending:
            if self._done:  # the drain finished as the grace ended: the main thread is exiting
                return
            status = 1
            try:
                status = 0 if self._give_back_claims() else 1
                if self._current is not None:
                    self.emit(self._current.summary())
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(status)

    def _give_back_claims(self) -> bool:
        """Give back this process's unstarted claims, logging the give-up; return False if the database refused."""
        extra = {"action": "worker_stop", "graceSeconds": self.grace_seconds}
        try:
            released = release_unstarted(worker_prefix=process_prefix())
        except Error as exc:  # the database is unreachable (a connect_timeout at most), or refused the release
            logger.error(
                "worker gave up on its running job at the end of the grace; its unstarted claims could not be given "
                "back: lease recovery returns them once their lease expires",
                extra={**extra, "error": one_line(exc)},
            )
            return False
        logger.warning(
            "worker gave up on its running job at the end of the grace", extra={**extra, "released": released}
        )
        return True


@dataclass
class _LostClaims:
    """The claims of the drains that lost their connection, kept until the database answers again."""

    error: BaseException
    lost_at: datetime
    claims: dict[int, BackgroundJob] = field(default_factory=dict)

    def take_back(self) -> None:
        """Take back the claims still held (jobs.recovery.claims_take_back)."""
        if self.claims:
            claims_take_back(
                claims=list(self.claims.values()), error=self.error, lost_at=self.lost_at, now=timezone.now()
            )


class _SignalWatcher:
    """While in use: SIGTERM and SIGINT set `stop`; if the worker is not done within the grace, `give_up()`.

    The signals are blocked in every thread of the worker and taken by a thread of
    its own with sigwait: a signal the kernel hands to a busy thread would otherwise
    wait for the main thread to run Python code again (it may be inside a handler).
    """

    def __init__(self, *, grace_seconds: float, stop: threading.Event, give_up: Callable[[], None]) -> None:
        self.grace_seconds = grace_seconds
        self.stop = stop
        self.give_up = give_up
        self._finished = False
        self._thread = threading.Thread(target=self._watch, name="jobs-worker-signals", daemon=True)
        self._mask: set[int | signal.Signals] = set()

    def __enter__(self) -> _SignalWatcher:
        # Threads started from now on (this watcher, the drain's lanes) inherit the blocked signals.
        self._mask = signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._finished = True
        if self._thread.ident is not None and self._thread.is_alive():
            signal.pthread_kill(self._thread.ident, signal.SIGTERM)  # wakes the watcher: it sees _finished
        self._thread.join()
        signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)

    def _watch(self) -> None:
        signum = signal.sigwait(STOP_SIGNALS)
        if self._finished:
            return
        self.stop.set()  # before the log line: once it is out, no job starts
        logger.info(
            "worker stopping: no new jobs; the running one may finish",
            extra={"action": "worker_stop", "signal": signal.Signals(signum).name, "graceSeconds": self.grace_seconds},
        )
        signal.sigtimedwait(STOP_SIGNALS, self.grace_seconds)  # the grace, cut short by a second signal
        if not self._finished:
            self.give_up()
