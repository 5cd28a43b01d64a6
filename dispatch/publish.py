"""Publishing events through the Inngest SDK within a hard time bound.

The SDK retries a send up to five times with backoff, each try with its own
timeout, so one `send_sync` can take many seconds. The dispatcher must answer
within INNGEST_PUBLISH_TIMEOUT_SECONDS whatever the event API does, so every
publish runs the SDK's async `send` under `asyncio.wait_for`, on an event loop
of the calling thread's own: at the bound the retry loop and its backoff sleeps
are cancelled, not abandoned.

The client is the process's shared one (core.inngest.client_for), built off the
calling thread, so the SDK sends each try with its synchronous HTTP client in the
loop's executor; the dispatcher gets it before it claims its window, so building
it (once per process, slow under load) never counts against the window's stale
bound. A try still in flight at the bound ends by its own timeout, which is the
bound too. Event ids are deterministic, so a later re-publish of the same window
is safe.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading

import httpx
import inngest
from inngest._internal import errors as inngest_errors

from core.errors import one_line

logger = logging.getLogger(__name__)

# How long the failure path waits to learn whether anything listens at the event API.
PROBE_SECONDS = 0.2


class PublishError(Exception):
    """The events were not (known to be) accepted; the message is one line, without secrets."""


def publish_events(events: list[inngest.Event], *, client: inngest.Inngest, timeout: float) -> list[str]:
    """Send `events` with `client` (core.inngest.client_for), retries included, within `timeout` seconds.

    Raise PublishError otherwise.
    """
    return _thread_loop().run_until_complete(_send(events, client=client, timeout=timeout))


async def _send(events: list[inngest.Event], *, client: inngest.Inngest, timeout: float) -> list[str]:
    try:
        return await asyncio.wait_for(client.send(events, skip_middleware=True), timeout)
    except TimeoutError:
        raise PublishError(_refused(client) or f"publish timed out after {timeout:g} s") from None
    except inngest_errors.EventKeyUnspecifiedError as exc:
        raise PublishError("no event key: set INNGEST_EVENT_KEY (or INNGEST_DEV for the dev server)") from exc
    except inngest_errors.SendEventsError as exc:
        # The SDK says "never received response" when every try failed to connect.
        raise PublishError(_refused(client) or f"event API refused the events: {one_line(exc, 300)}") from exc
    except inngest_errors.Error as exc:  # the SDK's other errors
        raise PublishError(f"event API refused the events: {one_line(exc, 300)}") from exc
    except ValueError as exc:  # a body that is not JSON, or JSON of the wrong shape
        raise PublishError(f"event API answered with an unreadable body: {one_line(exc, 200)}") from exc
    except (httpx.HTTPError, OSError) as exc:
        raise PublishError(f"event API unreachable: {one_line(exc, 200)}") from exc


def _refused(client: inngest.Inngest) -> str:
    """Return why a failed publish failed when nothing listens at the event API ("" otherwise).

    The SDK retries a refused connection silently until the bound, which would then
    read as a timeout: one connection attempt, on the failure path only, tells the two apart.
    """
    origin = str(getattr(client, "_event_api_origin", ""))
    if not origin:
        return ""
    url = httpx.URL(origin)
    try:
        with socket.create_connection((url.host, url.port or (443 if url.scheme == "https" else 80)), PROBE_SECONDS):
            return ""
    except ConnectionRefusedError:
        return f"connection refused by the event API at {origin}: is it running? (docs/inngest.md, 'Connecting')"
    except OSError:  # unreachable or slow: the bound's own error says enough
        return ""


class _Loop(threading.local):
    """The calling thread's event loop, closed with its thread."""

    loop: asyncio.AbstractEventLoop | None = None

    def __del__(self) -> None:
        if self.loop is not None:
            self.loop.close()


_loops = _Loop()


def _thread_loop() -> asyncio.AbstractEventLoop:
    if _loops.loop is None:
        _loops.loop = asyncio.new_event_loop()
    return _loops.loop
