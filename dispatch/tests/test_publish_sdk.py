"""The Inngest SDK internals the app relies on are pinned: an upgrade that changes one fails here, naming it.

dispatch/publish.py runs the SDK's send itself (its request, its HTTP client, its
retry schedule, its reading of the answer), core/inngest.py reads each sync's
registration through the same HTTP client, and runs/registered.py authenticates as
the SDK does. None of these is the SDK's public API.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import httpx
import inngest
import pytest
from inngest._internal import errors as inngest_errors
from inngest._internal import transforms
from inngest._internal.client_lib import client as inngest_client
from inngest._internal.client_lib.models import SendEventsResult

ORIGIN = "http://127.0.0.1:9/"


def _client() -> inngest.Inngest:
    return inngest.Inngest(app_id="pin", event_key="key", is_production=False, event_api_base_url=ORIGIN)


def _send_request() -> bool:
    request = _client()._build_send_request([inngest.Event(name="a/b", id="e-1", data={"n": 1})])
    return (
        isinstance(request, httpx.Request)
        and str(request.url) == f"{ORIGIN}e/key"
        and [(e["name"], e["id"], e["data"]) for e in json.loads(request.content)] == [("a/b", "e-1", {"n": 1})]
    )


def _answer_read() -> bool:
    taken = SendEventsResult.from_raw({"ids": ["01X"], "status": 200})
    refused = SendEventsResult.from_raw({"ids": [""], "status": 400, "error": "event name is empty"})
    return (
        isinstance(taken, SendEventsResult)
        and (taken.ids, taken.error) == (["01X"], None)
        and isinstance(refused, SendEventsResult)
        and refused.error == "event name is empty"
    )


INTERNALS: dict[str, Callable[[], Any]] = {
    "Inngest._build_send_request(events) -> httpx.Request to {event API}/e/{key}": _send_request,
    "Inngest._http_client._http_client_sync: an httpx.Client with event_hooks": lambda: (
        isinstance(_client()._http_client._http_client_sync, httpx.Client)
        and isinstance(_client()._http_client._http_client_sync.event_hooks["response"], list)
    ),
    "Inngest._event_api_origin: the event API's origin": lambda: _client()._event_api_origin == ORIGIN,
    "client_lib.client.MAX_SEND_ATTEMPTS: an int": lambda: type(inngest_client.MAX_SEND_ATTEMPTS) is int,
    "client_lib.client._compute_backoff_delay(attempt) -> seconds": lambda: (
        0 <= inngest_client._compute_backoff_delay(0) < inngest_client._compute_backoff_delay(4) < 10
    ),
    "client_lib.models.SendEventsResult.from_raw(answer) -> ids, error": _answer_read,
    "errors.SendEventsError(message, ids), errors.EventKeyUnspecifiedError: errors.Error": lambda: (
        isinstance(inngest_errors.SendEventsError("refused", []), inngest_errors.Error)
        and issubclass(inngest_errors.EventKeyUnspecifiedError, inngest_errors.Error)
    ),
    "transforms.hash_signing_key(key) -> sha256 of its hex bytes": lambda: (
        transforms.hash_signing_key("signkey-test-0a1b") == hashlib.sha256(bytes.fromhex("0a1b")).hexdigest()
    ),
}


def changed_internals() -> list[str]:
    """Return the internals that no longer behave as the app relies on."""
    changed = []
    for name, holds in INTERNALS.items():
        try:
            if not holds():
                changed.append(name)
        except Exception:  # Any error: the internal moved, was renamed or changed its signature.
            changed.append(name)
    return changed


def test_sdk_internals__the_pinned_sdk_still_has_every_one() -> None:
    assert changed_internals() == [], "the Inngest SDK's internals changed: fix dispatch/publish.py and its peers"


def test_sdk_internals__a_change_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(inngest.Inngest, "_build_send_request")
    monkeypatch.setattr(inngest_client, "MAX_SEND_ATTEMPTS", "5")

    assert changed_internals() == [
        "Inngest._build_send_request(events) -> httpx.Request to {event API}/e/{key}",
        "client_lib.client.MAX_SEND_ATTEMPTS: an int",
    ]
