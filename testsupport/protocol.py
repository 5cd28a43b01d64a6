"""The Inngest SDK protocol as the loopback executor speaks it (see testsupport.executor).

What a function and a run are to the executor, how Inngest signs what it sends and
checks what the SDK answers (`X-Inngest-Signature: t=<unix>&s=<hex HMAC-SHA256 of
the JCS-canonical body + t, keyed with the signing key minus its prefix>`), and the
small parsers of its expressions and answers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
import urllib.parse
from dataclasses import dataclass, field
from typing import Any

import httpx


class ProtocolError(AssertionError):
    """The app answered something the Inngest protocol does not allow."""


@dataclass
class Run:
    """One function run as the executor saw it."""

    function_id: str
    run_id: str
    event: dict[str, Any]
    status: str = "running"  # running | completed | failed
    output: Any = None
    error: dict[str, Any] | None = None
    max_attempt: int = 0
    requests: int = 0
    steps: dict[str, Any] = field(default_factory=dict)


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


def new_run_id() -> str:
    return "01" + secrets.token_hex(12).upper()
