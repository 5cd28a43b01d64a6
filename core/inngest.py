"""The Inngest client, built from settings (SPEC §8: the SDK's variables keep their meaning).

`INNGEST_DEV` ("1", "true", or the dev server's URL) selects the dev server;
otherwise the client runs in cloud mode (signed requests, INNGEST_SIGNING_KEY).
Self-hosted Inngest is reached with INNGEST_BASE_URL, or the two specific base URLs.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import inngest
from django.conf import settings

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

    @property
    def dev_mode(self) -> bool:
        """Return whether INNGEST_DEV selects the dev server."""
        return self.dev.strip().lower() not in ("", "0", "false")

    @property
    def dev_url(self) -> str:
        """Return the dev server URL when INNGEST_DEV names one, else ""."""
        return self.dev.strip() if self.dev_mode and "://" in self.dev else ""

    @property
    def servable(self) -> bool:
        """Return whether /api/inngest can verify requests (a signing key, or the dev server)."""
        return self.dev_mode or bool(self.signing_key)


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
    )


def build_client(config: InngestConfig) -> inngest.Inngest:
    """Return a new client for `config` (explicit values: settings win over the SDK's own lookups)."""
    return inngest.Inngest(
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


@functools.lru_cache(maxsize=8)
def client_for(config: InngestConfig) -> inngest.Inngest:
    """Return the shared client for `config` (one per configuration, built once)."""
    return build_client(config)
