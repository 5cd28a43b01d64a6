"""Publishing events through the Inngest SDK within a time bound, retries included.

The SDK's own `send` retries up to five times with backoff, each try with its own
timeout, so one send can take many seconds; the dispatcher must answer within
INNGEST_PUBLISH_TIMEOUT_SECONDS whatever the event API does. So the publish runs
the SDK's retry loop itself, synchronously in the calling thread, against one
deadline: the SDK builds the request (event API URL, event key, headers, the events
as it serialises them) and its synchronous HTTP client sends it; a try that fails
to connect or answers 5xx is tried again after the SDK's backoff, as `send` does,
as long as time is left; the answer is read as the SDK reads it.

Every wait of a try (connecting, sending, each read) is bounded by the time left
when the try starts, and no try or backoff starts after the deadline: a hung, slow
or unreachable event API ends the publish at the bound. (Only a server that trickles
its answer byte by byte, each within the bound, could stretch it.) Sending in the
calling thread, without an event loop and its executor thread in between, is what
keeps a fresh dispatch near its floor (BENCHMARKS.md). Event ids are deterministic,
so a later re-publish of the same window is safe.

The client is the process's shared one (core.inngest.client_for). The SDK's
request building and retry schedule are private to it: `inngest` is pinned, and
dispatch/tests/test_publish*.py hold the publish to every failure shape.
"""

from __future__ import annotations

import logging
import socket
import time

import httpx
import inngest
from inngest._internal import errors as inngest_errors
from inngest._internal.client_lib import client as inngest_client
from inngest._internal.client_lib.models import SendEventsResult

from core.errors import one_line

logger = logging.getLogger(__name__)

# How long the failure path waits to learn whether anything listens at the event API.
PROBE_SECONDS = 0.2


class PublishError(Exception):
    """The events were not (known to be) accepted; the message is one line, without secrets."""


def publish_events(events: list[inngest.Event], *, client: inngest.Inngest, timeout: float) -> list[str]:
    """Send `events` with `client` (core.inngest.client_for), retries included, within `timeout` seconds.

    Return the event ids the event API accepted; raise PublishError otherwise.
    """
    deadline = time.monotonic() + timeout
    try:
        return _send(events, client=client, deadline=deadline)
    except _TimedOut:
        raise PublishError(_refused(client) or f"publish timed out after {timeout:g} s") from None
    except inngest_errors.EventKeyUnspecifiedError as exc:
        raise PublishError("no event key: set INNGEST_EVENT_KEY (or INNGEST_DEV for the dev server)") from exc
    except inngest_errors.SendEventsError as exc:
        # "never received response" when every try failed to connect.
        raise PublishError(_refused(client) or f"event API refused the events: {one_line(exc, 300)}") from exc
    except inngest_errors.Error as exc:  # the SDK's other errors
        raise PublishError(f"event API refused the events: {one_line(exc, 300)}") from exc
    except ValueError as exc:  # a body that is not JSON, or JSON of the wrong shape
        raise PublishError(f"event API answered with an unreadable body: {one_line(exc, 200)}") from exc
    except (httpx.HTTPError, OSError) as exc:
        raise PublishError(f"event API unreachable: {one_line(exc, 200)}") from exc


def _refused(client: inngest.Inngest) -> str:
    """Return why a failed publish failed when nothing listens at the event API ("" otherwise).

    A refused connection is tried again until the bound, which would then read as a
    timeout: one connection attempt, on the failure path only, tells the two apart.
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


class _TimedOut(Exception):
    """The deadline passed before an answer came."""


def _send(events: list[inngest.Event], *, client: inngest.Inngest, deadline: float) -> list[str]:
    request = client._build_send_request(events)
    if isinstance(request, Exception):
        raise request
    sender = client._http_client._http_client_sync
    response: httpx.Response | None = None
    for attempt in range(inngest_client.MAX_SEND_ATTEMPTS):
        left = deadline - time.monotonic()
        if left <= 0:
            raise _TimedOut
        request.extensions["timeout"] = httpx.Timeout(left).as_dict()
        try:
            response = sender.send(request)
        except httpx.TimeoutException:
            raise _TimedOut from None
        except httpx.RequestError:
            response = None  # tried again after the backoff, as the SDK does
        if response is not None and response.status_code < 500:
            break
        pause = inngest_client._compute_backoff_delay(attempt)
        if time.monotonic() + pause >= deadline:
            raise _TimedOut
        time.sleep(pause)
    if response is None:
        raise inngest_errors.SendEventsError("never received response while sending events", [])
    result = SendEventsResult.from_raw(response.json())
    if isinstance(result, Exception):
        raise result
    if result.error is not None:
        raise inngest_errors.SendEventsError(result.error, result.ids)
    return result.ids
