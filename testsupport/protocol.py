"""The Inngest SDK protocol as the loopback executor speaks it (see testsupport.executor).

What a function and a run are to the executor, its clock, how Inngest signs what it
sends and checks what the SDK answers (`X-Inngest-Signature: t=<unix>&s=<hex
HMAC-SHA256 of the JCS-canonical body + t, keyed with the signing key minus its
prefix>`), Inngest's ids (ULIDs), and the small parsers of its expressions and answers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import httpx

from testsupport.retries import DEFAULT_RETRIES, MAX_RETRIES

FAILED_EVENT = "inngest/function.failed"
SCHEDULED_EVENT = "inngest/scheduled.timer"


class ProtocolError(AssertionError):
    """The app answered something the Inngest protocol does not allow."""


class Clock:
    """The executor's clock, in seconds since the epoch: it moves only when a test advances it.

    It starts at the wall clock's time, so that ids and event times look current. What
    the app checks against its own clock (a request signature's age) uses the wall clock.
    """

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start
        self._lock = threading.Lock()

    def now(self) -> float:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a clock does not go back")
        with self._lock:
            self._now += seconds

    def advance_to(self, at: float) -> None:
        """Move the clock to `at`, if that is later."""
        with self._lock:
            self._now = max(self._now, at)


@dataclass
class Run:
    """One function run as the executor saw it (times on the executor's clock)."""

    function_id: str
    run_id: str
    event: dict[str, Any]
    started_at: float = 0.0
    status: str = "running"  # running | completed | failed
    output: Any = None
    error: dict[str, Any] | None = None
    max_attempt: int = 0
    requests: int = 0
    steps: dict[str, Any] = field(default_factory=dict)
    stack: list[str] = field(default_factory=list)
    ended_at: float | None = None


@dataclass
class Function:
    id: str
    trigger_event: str  # "" for a function on a cron schedule
    expression: str | None
    max_attempts: int
    concurrency: int | None
    idempotency: str | None
    url: str
    cron: str | None = None  # its schedule, when a cron trigger starts it


def function_from_config(config: dict[str, Any]) -> Function:
    """Return the function an SDK's function config describes (a sync's answer, or a registration).

    pkg/sdk/function.go: the retries of its one step (the function's default when it does
    not say, at most MaxRetries), its concurrency as the SDK sends it (a list: the
    per-step form), and its idempotency expression.
    """
    step = config["steps"]["step"]
    trigger = config["triggers"][0]
    limits = config.get("concurrency") or [{}]
    retries = (step.get("retries") or {"attempts": DEFAULT_RETRIES})["attempts"]
    return Function(
        id=config["id"],
        trigger_event=trigger.get("event", ""),
        cron=trigger.get("cron"),
        expression=trigger.get("expression"),
        max_attempts=min(retries, MAX_RETRIES) + 1,
        concurrency=limits[0].get("limit"),
        idempotency=config.get("idempotency"),
        url=step["runtime"]["url"],
    )


def failure_event(function: Function, run: Run, error: dict[str, Any] | None, *, now: float) -> dict[str, Any]:
    """Return the `inngest/function.failed` event of a failed run (pkg/execution/executor/finalize.go).

    Its id is the run id ("using the RunID as the ID prevents duped runs"); its data
    carries the run's event as the server keeps it (pkg/event/event.go, Event.Map).
    """
    event = run.event
    kept = {
        "name": event.get("name"),
        "data": event.get("data") or {},
        "user": event.get("user") or {},
        "id": event.get("id") or "",
        "ts": float(event.get("ts") or 0),
    }
    data = {
        "function_id": function.id,
        "run_id": run.run_id,
        "event": kept,
        "events": [kept],
        "error": error,
        "_inngest": {"status": "Failed"},
    }
    return {"name": FAILED_EVENT, "id": run.run_id, "ts": int(now * 1000), "data": data}


def scheduled_event(function: Function, *, now: float) -> dict[str, Any]:
    """Return the event Inngest's scheduler starts a cron-triggered function with."""
    return {"name": SCHEDULED_EVENT, "id": new_ulid(now), "ts": int(now * 1000), "data": {"cron": function.cron}}


def signed_headers(body: bytes, *, signing_key: str, signed_at: int | None = None) -> dict[str, str]:
    """Return the headers Inngest sends with `body`, signed now (or at `signed_at`, a unix time)."""
    timestamp = str(int(time.time()) if signed_at is None else signed_at)
    signature = hmac.new(_key(signing_key), body + timestamp.encode(), hashlib.sha256).hexdigest()
    return {
        "Content-Type": "application/json",
        "X-Inngest-Signature": f"t={timestamp}&s={signature}",
        "X-Inngest-Server-Kind": "cloud",
    }


def verify_response(response: httpx.Response, *, signing_key: str) -> None:
    """Check the SDK's response signature (the SDK signs what it answers to signed requests)."""
    if response.status_code == 401:
        return  # an unauthorized answer is not signed
    header = response.headers.get("x-inngest-signature")
    if header is None:
        raise ProtocolError(f"unsigned response ({response.status_code}): {response.text[:200]}")
    fields = urllib.parse.parse_qs(header)
    timestamp, signature = fields["t"][0], fields["s"][0]
    expected = hmac.new(_key(signing_key), response.content + timestamp.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(signature, expected):
        raise ProtocolError("the response signature does not verify")


def _key(signing_key: str) -> bytes:
    return re.sub(r"^signkey-\w+-", "", signing_key).encode()


def idempotency_key(expression: str | None, event: dict[str, Any]) -> str | None:
    if not expression:
        return None
    match = re.fullmatch(r"event\.data\.(\w+)", expression)
    if match is None:
        raise NotImplementedError(f"idempotency expression {expression!r} is not supported")
    value = (event.get("data") or {}).get(match.group(1))
    return None if value is None else json.dumps(value)


def error_body(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {"name": "Error", "message": f"HTTP {response.status_code}: {response.text[:200]}"}
    return body if isinstance(body, dict) else {"name": "Error", "message": json.dumps(body)[:200]}


def with_query(url: str, **params: str) -> str:
    parts = urllib.parse.urlsplit(url)
    query = dict(urllib.parse.parse_qsl(parts.query)) | params
    return urllib.parse.urlunsplit(parts._replace(query=urllib.parse.urlencode(query)))


_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_ulid(at: float) -> str:
    """Return a new ULID for the time `at` (Inngest's run ids and event ids are ULIDs)."""
    value = (int(at * 1000) << 80) | secrets.randbits(80)
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))
