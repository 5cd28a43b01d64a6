"""What Inngest's event API answers to `POST /e/<key>`, and which events it takes (for the event API double).

Each rule follows a file of the open-source server (github.com/inngest/inngest),
named beside it. The events of a list are taken one by one: when one is refused,
those before it are taken already, and the answer is a 400 naming the error, with the
ids of the taken ones.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from testsupport.protocol import new_ulid, ulid

# pkg/consts/consts.go: AbsoluteMaxEventSize (the limit pkg/api/api.go gives the parser) and MaxEvents.
MAX_EVENT_BYTES = 3 * 1024 * 1024
MAX_EVENTS = 5_000
# pkg/event/event.go: Event.Validate refuses a `ts` (milliseconds) before 1980 or after 2100.
MIN_TS_MS = 315_532_800_000
MAX_TS_MS = 4_102_444_800_000
# pkg/consts/events.go: InternalNamePrefix (pkg/event/inbound.go refuses it, whatever its case).
INTERNAL_PREFIX = "inngest/"
INTERNAL_DATA = "_inngest"  # pkg/consts/consts.go, InngestEventDataPrefix: stripped from what is sent
# pkg/event/event.go, Event: the fields the server keeps, each of the JSON type Go reads it as (or null).
_FIELDS: dict[str, type] = {"id": str, "name": str, "data": dict, "ts": int, "v": str, "user": dict}
_JSON = json.JSONDecoder(parse_constant=lambda name: _refuse(f"invalid character '{name[0]}' looking for a value"))
_SPACE = " \t\n\r"


@dataclass
class Intake:
    """One request's outcome: its status and body, and the events taken (already normalized)."""

    status: int
    body: dict[str, Any]
    taken: list[dict[str, Any]] = field(default_factory=list)


def take(body: bytes, *, seed: str | None, received_ms: int) -> Intake:
    """Take the events of `body` (one event, or a list), as the event API does.

    pkg/api/api.go, ReceiveEvent: each event gets an internal id of the server's own
    (event_id), which is what the answer lists — not the `id` the sender gave, which
    is the event's idempotency key (testsupport.executor) and, when none is given, the
    internal id (pkg/event/legacy_types.go, NewBaseTrackedEvent).
    """
    ids: list[str] = []
    taken: list[dict[str, Any]] = []
    try:
        for number, raw in enumerate(_events(body), start=1):
            event = _normalized(raw, received_ms=received_ms)
            ids.append(event_id(seed, number, received_ms=received_ms))
            taken.append(event if event.get("id") else {**event, "id": ids[-1]})
    except _Refused as refused:
        # The answer lists ids[0:max+1]: one empty id when none was taken.
        return Intake(400, {"ids": ids or [""], "status": 400, "error": str(refused)}, taken)
    return Intake(200, {"ids": ids or [""], "status": 200}, taken)


def event_id(seed: str | None, number: int, *, received_ms: int) -> str:
    """Return the internal id of the `number`th event (from 1) of a request sent with the SDK's `seed` header.

    pkg/event/id.go, SeededIDFromString and ToULID: the seed is "<unix ms>,<10 bytes in
    base 64>"; the event's ULID takes its time and its entropy, the entropy's last four
    bytes raised by the event's number — so a request sent again gets the same ids. Without
    a usable seed, a new ULID.
    """
    millis_text, _, entropy_text = (seed or "").partition(",")
    try:
        millis, entropy = int(millis_text), base64.b64decode(entropy_text, validate=True)
    except (ValueError, binascii.Error):
        return new_ulid(received_ms / 1000)
    if not 0 < millis < 2**48 or len(entropy) != 10:
        return new_ulid(received_ms / 1000)
    raised = (int.from_bytes(entropy[6:], "big") + number) % 2**32
    return ulid(millis, entropy[:6] + raised.to_bytes(4, "big"))


class _Refused(Exception):
    """The event API refuses the request from this event on (the message is the server's)."""


def _refuse(message: str) -> Any:
    raise _Refused(message)


def _events(body: bytes) -> Iterator[str]:
    """Yield each event of the body as it was sent, in order (pkg/eventstream/eventstream.go, ParseStream).

    An empty body is no event; a body from `{` on is one event; a list's events are
    read one by one until one cannot be, the last missing `]` forgiven as Go's decoder
    forgives it; anything else is refused.
    """
    text = body.decode("utf-8", "surrogateescape")
    start = _skip(text, 0)
    if start == len(text):
        return
    if text[start] == "{":
        yield _limited(text[start:])
        return
    if text[start] != "[":
        raise _Refused("Request body must contain an event object or an array of event objects")
    at, number = start + 1, 0
    while (at := _skip(text, at)) < len(text) and text[at] not in "]}":  # encoding/json, Decoder.More
        if number == MAX_EVENTS:  # pkg/eventstream/errors.go, ErrEventCount
            raise _Refused(f"Cannot have more than {MAX_EVENTS} events in a batch")
        if number:
            if text[at] != ",":
                raise _Refused("invalid character after array element: expected comma")
            at = _skip(text, at + 1)
        try:
            end = _JSON.raw_decode(text, at)[1]
        except ValueError as exc:
            raise _Refused(f"unexpected JSON: {exc}") from None
        yield _limited(text[at:end])
        at, number = end, number + 1


def _skip(text: str, at: int) -> int:
    while at < len(text) and text[at] in _SPACE:
        at += 1
    return at


def _limited(raw: str) -> str:
    size = len(raw.encode("utf-8", "surrogateescape"))  # the bytes sent, not as JSON would escape them
    if size > MAX_EVENT_BYTES:
        raise _Refused(f"Event is over the max size: Max {MAX_EVENT_BYTES} bytes / Size {size} bytes")
    return raw


def _normalized(raw: str, *, received_ms: int) -> dict[str, Any]:
    """Return the event as the server keeps it, or refuse it (pkg/event/inbound.go, NormalizeInbound)."""
    try:
        event = _JSON.decode(raw)
    except ValueError as exc:
        raise _Refused(f"unexpected JSON: {exc}") from None
    if not isinstance(event, dict):
        raise _Refused("json: cannot unmarshal the event: not an object")
    kept = {name: event[name] for name in _FIELDS if event.get(name) is not None}
    if any(type(value) is not _FIELDS[name] for name, value in kept.items()):
        raise _Refused("json: cannot unmarshal the event: id, name, v strings, ts a whole number, data, user objects")
    name, ts = kept.get("name", ""), kept.get("ts", 0)
    if name.lower().startswith(INTERNAL_PREFIX):
        raise _Refused(f"event name is reserved for internal use: {name}")
    if not name:
        raise _Refused("event name is empty")
    if ts and not MIN_TS_MS <= ts <= MAX_TS_MS:
        raise _Refused("timestamp is before Jan 1, 1980" if ts < MIN_TS_MS else "timestamp is after Jan 1, 2100")
    data = {key: value for key, value in kept.get("data", {}).items() if key != INTERNAL_DATA}
    return {**kept, "name": name, "data": data, "ts": ts or received_ms, "user": kept.get("user", {})}
