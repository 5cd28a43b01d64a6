"""A handler's own SystemExit or KeyboardInterrupt told apart from a signal sent to the process.

A handler may raise SystemExit (`sys.exit()`, argparse, click) or KeyboardInterrupt
itself: that is its job's failure, recorded as any other (jobs.group). A signal is
not: where the host turns a stop signal into one of these exceptions on the main
thread (Python's SIGINT handler raises KeyboardInterrupt, gunicorn's SIGQUIT and
SIGINT handlers call `sys.exit()`), the drain stops as it always has. So while a drain
runs on the main thread, the Python-level handlers of the stop signals are wrapped to
count each arrival, and an exception raised while one arrived is the signal's.

`run_jobs` takes its signals on a thread of its own (jobs.worker): none ever reaches
a handler there as an exception.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGQUIT, signal.SIGABRT)
_arrived = 0  # stop signals whose Python-level handler ran while counted (only the main thread runs them)


def arrivals() -> int:
    """Return how many stop signals have arrived so far (while counted)."""
    return _arrived


def is_signal(exc: BaseException, *, since: int) -> bool:
    """Return whether `exc` is a stop signal's doing: a SystemExit or KeyboardInterrupt with an arrival `since`."""
    return isinstance(exc, SystemExit | KeyboardInterrupt) and _arrived != since


@contextmanager
def signals_counted() -> Iterator[None]:
    """While in use on the main thread, count the stop signals that arrive; their handlers run as before."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signal handlers run on the main thread only: nothing to tell apart here
        return
    wrapped: dict[signal.Signals, tuple[Callable[..., Any], Callable[..., Any]]] = {}
    for signum in STOP_SIGNALS:
        previous = signal.getsignal(signum)
        if callable(previous):  # SIG_DFL and SIG_IGN raise nothing in Python
            counting = _counting(previous)
            signal.signal(signum, counting)
            wrapped[signum] = (previous, counting)
    try:
        yield
    finally:
        for signum, (previous, counting) in wrapped.items():
            if signal.getsignal(signum) is counting:  # left alone if someone installed another meanwhile
                signal.signal(signum, previous)


def _counting(previous: Callable[[int, FrameType | None], Any]) -> Callable[[int, FrameType | None], Any]:
    def counted(signum: int, frame: FrameType | None) -> Any:
        global _arrived
        _arrived += 1
        return previous(signum, frame)

    return counted
