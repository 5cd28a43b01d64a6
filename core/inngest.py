"""The Inngest client, built from settings (docs/inngest.md: the SDK's variables keep their meaning).

`INNGEST_DEV` ("1", "true", or the dev server's URL) selects the dev server;
otherwise the client runs in cloud mode (signed requests, INNGEST_SIGNING_KEY).
Self-hosted Inngest is reached with INNGEST_BASE_URL, or the two specific base URLs.

One client per configuration and process serves both the publisher and /api/inngest.
It is built on a thread of its own, so that its async HTTP client never belongs to a
calling thread: whatever the SDK sends itself then goes through its synchronous HTTP
client, which the dispatcher's bounded publish (dispatch.publish) uses directly, and
whose answers to the SDK's registration (`POST /fn/register`, an out-of-band sync) are
kept for the request that caused them (`registrations_seen`: the SDK itself answers a
refused registration as if it had succeeded).
"""

from __future__ import annotations

import atexit
import logging
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

import httpx
import inngest
from django.conf import settings

from core.environment import FALSE

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InngestConfig:
    app_id: str
    event_key: str
    signing_key: str
    dev: str
    env: str
    base_url: str
    event_api_base_url: str
    api_base_url: str
    request_timeout_ms: int
    serve_origin: str = ""
    enable_unauthed_sync: bool = False

    @property
    def dev_mode(self) -> bool:
        """Return whether INNGEST_DEV selects the dev server ("1", "true", or its URL; not empty nor a false word)."""
        return self.dev.strip().lower() not in FALSE

    @property
    def publishing_configured(self) -> bool:
        """Return whether events can be published: an event key, or the dev server."""
        return bool(self.event_key) or self.dev_mode

    @property
    def dev_url(self) -> str:
        """Return the dev server URL when INNGEST_DEV names one, else ""."""
        return self.dev.strip() if self.dev_mode and "://" in self.dev else ""

    @property
    def servable(self) -> bool:
        """Return whether /api/inngest can verify requests (a signing key, or the dev server)."""
        return self.dev_mode or bool(self.signing_key)

    @property
    def self_hosted(self) -> bool:
        """Return whether the app talks to a self-hosted Inngest (its API's URL set), not the dev server nor Cloud."""
        return not self.dev_mode and bool(self.base_url or self.api_base_url)

    @property
    def signing_key_usable(self) -> bool:
        """Return whether the signing key (if any) is one Inngest can use: even-length hex after its optional
        `signkey-<env>-` prefix (the SDK hashes its bytes to authenticate with Inngest's API)."""
        key = _KEY_PREFIX.sub("", self.signing_key)
        return self.dev_mode or not self.signing_key or _EVEN_HEX.fullmatch(key) is not None


_KEY_PREFIX = re.compile(r"^signkey-\w+-")  # what the SDK and Inngest strip before using a key
_EVEN_HEX = re.compile(r"(?:[0-9a-fA-F]{2})+")


def current_config() -> InngestConfig:
    """Return the Inngest configuration from the current settings."""
    return InngestConfig(
        app_id=settings.INNGEST_APP_ID,
        event_key=settings.INNGEST_EVENT_KEY,
        signing_key=settings.INNGEST_SIGNING_KEY,
        dev=settings.INNGEST_DEV,
        env=settings.INNGEST_ENV,
        base_url=settings.INNGEST_BASE_URL,
        event_api_base_url=settings.INNGEST_EVENT_API_BASE_URL,
        api_base_url=settings.INNGEST_API_BASE_URL,
        request_timeout_ms=max(1, round(settings.INNGEST_PUBLISH_TIMEOUT_SECONDS * 1000)),
        serve_origin=settings.INNGEST_SERVE_ORIGIN,
        enable_unauthed_sync=settings.INNGEST_ENABLE_UNAUTHED_SYNC,
    )


def build_client(config: InngestConfig) -> inngest.Inngest:
    """Return a new client for `config` (explicit values: settings win over the SDK's own lookups)."""
    client = inngest.Inngest(
        app_id=config.app_id,
        event_key=config.event_key or None,
        signing_key=config.signing_key or None,
        is_production=not config.dev_mode,
        env=config.env or None,
        api_base_url=config.api_base_url or config.base_url or config.dev_url or None,
        event_api_base_url=config.event_api_base_url or config.base_url or config.dev_url or None,
        # Each HTTP attempt is bounded by the publish bound; the dispatcher bounds the total.
        request_timeout=config.request_timeout_ms,
        logger=logging.getLogger("inngest"),
    )
    client._http_client._http_client_sync.event_hooks["response"].append(_keep_registration)
    return client


# The answers to the SDK's registrations made in the current request (registrations_seen), or None.
_registrations: ContextVar[list[httpx.Response] | None] = ContextVar("inngest_registrations", default=None)
REGISTER_PATH = "/fn/register"


@contextmanager
def registrations_seen() -> Iterator[list[httpx.Response]]:
    """Collect Inngest's answers to the registrations the SDK sends inside the block (read, in order)."""
    seen: list[httpx.Response] = []
    token = _registrations.set(seen)
    try:
        yield seen
    finally:
        _registrations.reset(token)


def _keep_registration(response: httpx.Response) -> None:
    seen = _registrations.get()
    if seen is not None and response.request.url.path.endswith(REGISTER_PATH):
        response.read()
        seen.append(response)


_clients: dict[tuple[int, InngestConfig], inngest.Inngest] = {}
_clients_lock = threading.Lock()


def client_for(config: InngestConfig) -> inngest.Inngest:
    """Return this process's shared client for `config` (a forked child builds its own)."""
    key = (os.getpid(), config)
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            holder: list[inngest.Inngest] = []
            builder = threading.Thread(target=lambda: holder.append(build_client(config)), name="inngest-client")
            builder.start()
            builder.join()
            client = _clients[key] = holder[0]
        return client


@atexit.register
def _close_clients() -> None:
    """Close the clients' HTTP connections at exit (the SDK exposes no close of its own)."""
    for client in _clients.values():
        client._http_client._http_client_sync.close()
