"""The Inngest SDK internals the app relies on are pinned: an upgrade that changes one fails here, naming it.

dispatch/publish.py runs the SDK's send itself (its request, its HTTP client, its
retry schedule, its reading of the answer), core/inngest.py reads each sync's
registration through the same HTTP client (a response hook), and runs/registered.py
authenticates as the SDK does. None of these is the SDK's public API.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

import httpx
import inngest
import inngest.django
import pytest
from django.test import RequestFactory
from inngest._internal import errors as inngest_errors
from inngest._internal import net, transforms
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


def _sync_registers_through_the_sync_client() -> bool:
    """An out-of-band sync's registration goes through the client's synchronous HTTP client, whose response hook
    core.inngest.registrations_seen reads."""
    client = inngest.Inngest(app_id="pin", is_production=False, api_base_url=ORIGIN)
    sent: list[str] = []

    def unsent(request: httpx.Request) -> None:
        sent.append(request.url.path)
        raise RuntimeError("kept from the network")

    client._http_client._http_client_sync.event_hooks["request"].append(unsent)
    function = client.create_function(fn_id="pin", trigger=inngest.TriggerEvent(event="a/b"))(lambda ctx: None)
    view = inngest.django.serve(client, [function]).callback
    view(RequestFactory().put("/api/inngest", data=b"{}", content_type="application/json"))
    return sent == ["/fn/register"]


INTERNALS: dict[str, Callable[[], Any]] = {
    "Inngest._build_send_request(events) -> httpx.Request to {event API}/e/{key}": _send_request,
    "Inngest._http_client._http_client_sync: an httpx.Client with event_hooks": lambda: (
        isinstance(_client()._http_client._http_client_sync, httpx.Client)
        and isinstance(_client()._http_client._http_client_sync.event_hooks["response"], list)
    ),
    "Inngest._event_api_origin: the event API's origin": lambda: _client()._event_api_origin == ORIGIN,
    "an out-of-band sync registers through Inngest._http_client._http_client_sync": (
        _sync_registers_through_the_sync_client
    ),
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
    send = net.fetch_with_auth_fallback_sync  # an SDK that registered through an HTTP client of its own
    monkeypatch.setattr(
        net, "fetch_with_auth_fallback_sync", lambda client, request, **keys: send(httpx.Client(), request, **keys)
    )

    assert changed_internals() == [
        "Inngest._build_send_request(events) -> httpx.Request to {event API}/e/{key}",
        "an out-of-band sync registers through Inngest._http_client._http_client_sync",
        "client_lib.client.MAX_SEND_ATTEMPTS: an int",
    ]
