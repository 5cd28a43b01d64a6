"""The executor double's queue: each run's next call at a time on its clock, in Inngest's order.

Each rule follows a file of the open-source server (github.com/inngest/inngest), named
beside it.
"""

from __future__ import annotations

import itertools
import threading
from dataclasses import dataclass
from typing import Any

from testsupport.protocol import Clock, Function, Run, idempotency_key

IDEMPOTENCY_SECONDS = 24 * 3600.0  # pkg/consts/consts.go, FunctionIdempotencyPeriod


@dataclass
class Item:
    """The next call of a run: when it may happen, which attempt of its step it is, which step it asks for."""

    run: Run
    function: Function
    at: float
    attempt: int = 0
    target: str | None = None
    seq: int = 0


class RunQueue:
    """The calls waiting, and the idempotency keys held (thread-safe)."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._items: list[Item] = []
        self._held: dict[tuple[str, str], float] = {}  # (function, key) -> when it expires
        self._seq = itertools.count()
        self._lock = threading.Lock()

    def admit(self, function: Function, event: dict[str, Any]) -> bool:
        """Return whether `event` may start a run of `function`, holding its keys for 24 hours if so.

        Its id starts at most one run per function (pkg/execution/runner/runner.go,
        Initialize: the event id is the run's idempotency key), and so does the
        function's idempotency key (pkg/sdk/function.go: a rate limit of 1 per period).
        """
        now = self.clock.now()
        keys = [("event", str(event.get("id") or "")), ("key", idempotency_key(function.idempotency, event))]
        held = [(function.id, f"{kind}:{value}") for kind, value in keys if value]
        with self._lock:
            if any(self._held.get(key, 0.0) > now for key in held):
                return False
            self._held.update((key, now + IDEMPOTENCY_SECONDS) for key in held)
        return True

    def put(self, item: Item) -> None:
        item.seq = next(self._seq)
        with self._lock:
            self._items.append(item)

    def next_due(self) -> Item | None:
        """Take the item to call now, or None when none is due.

        pkg/execution/queue/item.go, QueueItem.Score: an item due now is ordered by its
        run's start (older runs first), whatever it is (a first call, a next step, a retry).
        """
        now = self.clock.now()
        with self._lock:
            due = [item for item in self._items if item.at <= now]
            if not due:
                return None
            item = min(due, key=lambda item: (item.run.started_at, item.at, item.seq))
            self._items.remove(item)
            return item

    def next_time(self) -> float | None:
        """Return when the next item is due, or None when the queue is empty."""
        with self._lock:
            return min((item.at for item in self._items), default=None)

    def waiting(self) -> list[tuple[Run, float]]:
        with self._lock:
            return [(item.run, item.at) for item in self._items]
