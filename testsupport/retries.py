"""When Inngest tries a failed step again: its backoff table, its jitter and `Retry-After` (for the executor double).

Each rule follows a file of the open-source server (github.com/inngest/inngest), named
beside it. Times are seconds on the executor's clock (testsupport.protocol.Clock).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime
from email.utils import parsedate_to_datetime

# pkg/backoff/backoff.go, BackoffTable: the wait after a failed attempt, by the attempt's number
# (0 for the first), the last entry standing for every later attempt.
BACKOFF_TABLE = (15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 2400.0, 3600.0, 7200.0)
# pkg/backoff/backoff.go, TableBackoff: "Add between 0 and 30 seconds randomly for jitter" (whole milliseconds).
JITTER_MAX = 30.0
# pkg/consts/consts.go: MinRetryDuration and MaxRetryDuration clip a Retry-After.
MIN_RETRY_AFTER = 1.0
MAX_RETRY_AFTER = 24 * 3600.0
# pkg/consts/consts.go, MaxRetries: a function's retries beyond this are lowered to it (pkg/sdk/function.go).
MAX_RETRIES = 20
# pkg/consts/consts.go, DefaultRetryCount: the retries of a function that does not say.
DEFAULT_RETRIES = 4

Jitter = Callable[[], float]


def random_jitter(seed: int = 0) -> Jitter:
    """Return a jitter like the server's, drawn from a seeded generator so that a test run repeats."""
    draw = random.Random(seed)
    return lambda: draw.randrange(int(JITTER_MAX * 1000)) / 1000


def backoff(attempt: int, *, jitter: Jitter) -> float:
    """Return how long after the failed `attempt` (0 for the first) its step is tried again.

    pkg/execution/queue/process.go: a retriable failure requeues the item at
    backoffFunc(attempt) (pkg/backoff/backoff.go, TableBackoff), then counts the attempt.
    """
    return BACKOFF_TABLE[min(attempt, len(BACKOFF_TABLE) - 1)] + jitter()


def retry_after(value: str, *, received_at: float) -> float | None:
    """Return the wait a `Retry-After` header asks for, clipped as the server clips it; None when unreadable.

    pkg/execution/driver/httpdriver/parse.go, ParseRetry: a value of up to 7
    characters is whole seconds (from now truncated to the second), anything longer a
    date; the wait is clipped to [MinRetryDuration, MaxRetryDuration]. A date is read
    against `received_at`, the wall-clock time the answer came (the app wrote it
    from its own clock); the wait is then applied on the executor's clock.
    """
    value = value.strip()
    if not value:
        return None
    if len(value) <= 7:
        try:
            seconds = int(value)
        except ValueError:
            return None
        wait = float(seconds) - (received_at % 1) if seconds > 0 else None
    else:
        try:  # the SDK writes ISO 8601 (RetryAfterError); HTTP's own date format is read too
            at = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            try:
                at = parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None
        wait = at.timestamp() - received_at
    if wait is None:
        return None
    return min(max(wait, MIN_RETRY_AFTER), MAX_RETRY_AFTER)
