"""What Inngest's event API answers to `POST /e/<key>`, and which events it takes (for the event API double).

Each rule follows a file of the open-source server (github.com/inngest/inngest),
named beside it. The events of a list are taken one by one: when one is refused,
those before it are taken already, and the answer is a 400 naming the error, with the
ids of the taken ones.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

# pkg/consts/consts.go: AbsoluteMaxEventSize (the limit pkg/api/api.go gives the parser) and MaxEvents.
MAX_EVENT_BYTES = 3 * 1024 * 1024
MAX_EVENTS = 5_000
# pkg/event/event.go: Event.Validate refuses a `ts` (milliseconds) outside [1980, 2100).
MIN_TS_MS = 315_532_800_000
MAX_TS_MS = 4_102_444_800_000
# pkg/consts/events.go: InternalNamePrefix (pkg/event/inbound.go refuses it, whatever its case).
INTERNAL_PREFIX = "inngest/"


@dataclass
class Intake:
    """One request's outcome: its status and body, and the events taken (already normalized)."""

    status: int
    body: dict[str, Any]
    taken: list[dict[str, Any]] = field(default_factory=list)


def take(body: bytes, *, new_id: Callable[[], str], received_ms: int) -> Intake:
    """Take the events of `body` (one event, or a list), as the event API does.

    pkg/api/api.go, ReceiveEvent: each event gets an internal id of the server's own
    (a ULID from `new_id`), which is what the answer lists — not the `id` the sender
    gave, which is the event's idempotency key (testsupport.executor).
    """
    ids: list[str] = []
    taken: list[dict[str, Any]] = []
    try:
        for raw in _events(body):
            event = _normalized(raw, received_ms=received_ms)
            ids.append(new_id())
            taken.append(event)
    except _Refused as refused:
        # pkg/api/api.go: the answer lists ids[0:max+1], which is one empty id when none was taken.
        return Intake(400, {"ids": ids or [""], "status": 400, "error": str(refused)}, taken)
    return Intake(200, {"ids": ids, "status": 200}, taken)


class _Refused(Exception):
    """The event API refuses the request from this event on (the message is the server's)."""


def _events(body: bytes) -> Iterator[bytes]:
    """Yield the raw JSON of each event of the body, in order (pkg/eventstream/eventstream.go, ParseStream)."""
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        raise _Refused(f"the request body is not JSON: {exc}") from None
    if isinstance(parsed, dict):
        yield _limited(body)
        return
    if not isinstance(parsed, list):
        raise _Refused("Request body must contain an event object or an array of event objects")
    for number, item in enumerate(parsed):
        if number == MAX_EVENTS:  # pkg/eventstream/errors.go, ErrEventCount
            raise _Refused(f"Cannot have more than {MAX_EVENTS} events in a batch")
        yield _limited(json.dumps(item, separators=(",", ":")).encode())


def _limited(raw: bytes) -> bytes:
    if len(raw) > MAX_EVENT_BYTES:
        raise _Refused(f"Event is over the max size: Max {MAX_EVENT_BYTES} bytes / Size {len(raw)} bytes")
    return raw


def _normalized(raw: bytes, *, received_ms: int) -> dict[str, Any]:
    """Return the event as the server keeps it, or refuse it (pkg/event/inbound.go, NormalizeInbound)."""
    event = json.loads(raw)
    if not isinstance(event, dict):
        raise _Refused("json: cannot unmarshal the event: not an object")
    name, ts, data = event.get("name", ""), event.get("ts", 0), event.get("data")
    if not isinstance(name, str) or not (ts is None or type(ts) is int) or not (data is None or isinstance(data, dict)):
        raise _Refused("json: cannot unmarshal the event: name must be a string, ts a whole number, data an object")
    if name.lower().startswith(INTERNAL_PREFIX):
        raise _Refused(f"event name is reserved for internal use: {name}")
    if not name:
        raise _Refused("event name is empty")
    if ts and not MIN_TS_MS <= ts < MAX_TS_MS:
        raise _Refused("timestamp is before Jan 1, 1980" if ts < MIN_TS_MS else "timestamp is after Jan 1, 2100")
    return {**event, "data": data or {}, "ts": ts or received_ms, "user": event.get("user") or {}}
