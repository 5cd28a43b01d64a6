"""When Inngest tries a failed step again: its backoff table, its jitter and `Retry-After` (for the executor double).

Each rule follows a file of the open-source server (github.com/inngest/inngest), named
beside it. Times are seconds on the executor's clock (testsupport.protocol.Clock).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Callable
from datetime import UTC, datetime
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
    characters is whole seconds (Go's Atoi) from the second the answer came in, anything
    else a date (pkg/dateutil: RFC 3339, a date and time without zone read as UTC,
    RFC 1123 ...); a time less than MinRetryDuration or more than MaxRetryDuration from
    now is moved to that far from the second the answer came in. A date is read against
    `received_at`, the wall-clock time the answer came (the app wrote it from its own
    clock); the wait is then applied on the executor's clock.
    """
    second = math.floor(received_at)
    if len(value) <= 7 and re.fullmatch(r"[+-]?[0-9]+", value) and int(value) > 0:
        at = second + float(value)
    elif (date := _date(value)) is not None:
        at = date.timestamp()
    else:
        return None
    if at - received_at > MAX_RETRY_AFTER:
        at = second + MAX_RETRY_AFTER
    elif at - received_at < MIN_RETRY_AFTER:
        at = second + MIN_RETRY_AFTER
    return at - received_at


def _date(value: str) -> datetime | None:
    """Return the time a date names (ISO 8601, as the SDK's RetryAfterError writes it, or HTTP's), or None."""
    try:
        date = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        try:
            date = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
    return date if date.tzinfo is not None else date.replace(tzinfo=UTC)
