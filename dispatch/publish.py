"""Publishing events through the Inngest SDK within a hard time bound.

The SDK retries a send up to five times with backoff, each try with its own
timeout, so one `send_sync` can take many seconds. The dispatcher must answer
within INNGEST_PUBLISH_TIMEOUT_SECONDS whatever the event API does, so every
publish runs as the SDK's async `send` on one event-loop thread per process,
under `asyncio.wait_for`: at the bound the request (or the backoff sleep) is
cancelled, not abandoned. Event ids are deterministic, so a later re-publish of
the same window is safe.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import threading
from typing import Any

import httpx
import inngest
from inngest._internal import errors as inngest_errors

from orchestrator.errors import one_line
from orchestrator.inngest import InngestConfig, build_client

logger = logging.getLogger(__name__)

# Grace beyond the bound for the loop thread to deliver the cancellation.
_HANDOFF_SECONDS = 0.25


class PublishError(Exception):
    """The events were not (known to be) accepted; the message is one line, without secrets."""


def publish_events(events: list[inngest.Event], *, config: InngestConfig, timeout: float) -> list[str]:
    """Send `events`, retries included, within `timeout` seconds; raise PublishError otherwise."""
    future = asyncio.run_coroutine_threadsafe(_send(events, config=config, timeout=timeout), _loop())
    try:
        return future.result(timeout + _HANDOFF_SECONDS)
    except concurrent.futures.TimeoutError:
        future.cancel()
        raise PublishError(f"publish timed out after {timeout:g} s") from None


async def _send(events: list[inngest.Event], *, config: InngestConfig, timeout: float) -> list[str]:
    client = _client(config)
    try:
        return await asyncio.wait_for(client.send(events, skip_middleware=True), timeout)
    except TimeoutError:
        raise PublishError(f"publish timed out after {timeout:g} s") from None
    except inngest_errors.EventKeyUnspecifiedError as exc:
        raise PublishError("no event key: set INNGEST_EVENT_KEY (or INNGEST_DEV for the dev server)") from exc
    except inngest_errors.Error as exc:  # SendEventsError and the SDK's other errors
        raise PublishError(f"event API refused the events: {one_line(exc, 300)}") from exc
    except ValueError as exc:  # a body that is not JSON, or JSON of the wrong shape
        raise PublishError(f"event API answered with an unreadable body: {one_line(exc, 200)}") from exc
    except (httpx.HTTPError, OSError) as exc:
        raise PublishError(f"event API unreachable: {one_line(exc, 200)}") from exc


# One loop thread per process (re-created after a fork), and one client per
# configuration inside it: the SDK's async HTTP client then stays on its thread.
_state: dict[str, Any] = {"pid": None, "loop": None}
_state_lock = threading.Lock()
_clients: dict[InngestConfig, inngest.Inngest] = {}


def _loop() -> asyncio.AbstractEventLoop:
    with _state_lock:
        loop: asyncio.AbstractEventLoop | None = _state["loop"]
        if loop is None or _state["pid"] != os.getpid():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="inngest-publish", daemon=True)
            thread.start()
            _state.update(pid=os.getpid(), loop=loop)
            _clients.clear()
        return loop


def _client(config: InngestConfig) -> inngest.Inngest:
    client = _clients.get(config)
    if client is None:
        client = _clients[config] = build_client(config)
    return client
