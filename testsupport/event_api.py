"""A loopback Inngest API for tests and benchmarks: its event API (`POST /e/<event key>`) and its registration.

It answers as Inngest's API does (testsupport.event_intake: `{"ids": [<its own ids>],
"status": 200}`, and its limits), records every event it accepts, and answers the
SDK's `POST /fn/register` and `GET /v1/apps/<app>/functions` as `inngest start` (with
`signing_key`) or the dev server (without) does (testsupport.registration). Its event
API can be told to misbehave, one behaviour at a time:

- ``ok``: accept (the default);
- ``hang``: accept the connection and never answer (until the server stops);
- ``hold``: keep the request until the test calls `release_held(behaviour)`, then
  answer it with that behaviour (requests arriving later follow the behaviour set
  by then, so one tick's publish can be held while another's goes through);
- ``slow``: answer ``ok`` after ``delay`` seconds;
- ``error500``: answer 500 (the SDK retries these);
- ``html``: answer 200 with an HTML body (not JSON);
- ``unauthorized``: answer 401 ``{"error": ...}``, as for a wrong event key;
- ``badjson``: answer 200 with JSON of the wrong shape (``ids`` not a list);
- ``truncated``: announce a longer body than it sends, then close the connection;
- ``reset``: close the connection without answering.

A refused connection needs no server at all: `closed_port_url()` names a port
that nothing listens on. Accepted events can be forwarded (`on_event`) to the
loopback executor, which then runs the functions they trigger, and registered
functions (`on_register`) to the executor that calls them.

It is a small HTTP/1.1 server on asyncio streams (keep-alive, Content-Length
bodies) in a thread of its own, so that in a benchmark its cost per request
stays far below the dispatcher's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any, Literal

from testsupport import event_intake, registration
from testsupport.protocol import new_ulid

Behaviour = Literal["ok", "hang", "hold", "slow", "error500", "html", "unauthorized", "badjson", "truncated", "reset"]
HANG_LIMIT_SECONDS = 60.0
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found", 500: "Internal Server Error"}
Answer = tuple[int, str, bytes]


class EventAPI:
    def __init__(
        self,
        *,
        event_key: str,
        on_event: Callable[[dict[str, Any]], None] | None = None,
        signing_key: str | None = None,
        on_register: Callable[[list[dict[str, Any]]], object] | None = None,
        server_kind: str = "cloud",
    ) -> None:
        self.event_key = event_key
        self.on_event = on_event
        self.signing_key = signing_key
        self.on_register = on_register
        self.server_kind = server_kind  # `inngest start` says "cloud", the dev server "dev"
        self.behaviour: Behaviour = "ok"
        self.delay = 0.0
        self.events: list[dict[str, Any]] = []
        self.registrations: list[registration.Answer] = []  # every /fn/register, refused ones included
        self.requests = 0  # to the event API
        self._lock = threading.Condition()
        self._first_request = threading.Event()
        self._held = threading.Event()
        self._held_answer: Behaviour = "ok"
        self._loop = asyncio.new_event_loop()
        self._release: asyncio.Event | None = None
        self._unhold: asyncio.Event | None = None
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()  # the connections being served
        self._thread = threading.Thread(target=self._loop.run_forever, name="event-api", daemon=True)
        self._port = 0

    @property
    def url(self) -> str:
        """Return the base URL to give the SDK as INNGEST_EVENT_API_BASE_URL."""
        return f"http://127.0.0.1:{self._port}"

    def start(self) -> EventAPI:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    def __enter__(self) -> EventAPI:
        return self.start()

    def __exit__(self, *args: object) -> None:
        self.stop()

    def behave(self, behaviour: Behaviour, *, delay: float = 0.0) -> None:
        """Answer every later request with `behaviour`."""
        self.behaviour, self.delay = behaviour, delay

    def wait_for_request(self, timeout: float = 30.0) -> bool:
        """Block until a request has arrived (e.g. before killing the process that sent it)."""
        return self._first_request.wait(timeout)

    def wait_for_held(self, timeout: float = 30.0) -> bool:
        """Block until a request is held (behaviour ``hold``)."""
        return self._held.wait(timeout)

    def release_held(self, answer: Behaviour) -> None:
        """Answer the held requests with `answer` (the behaviour set for later requests is unchanged)."""
        self._held_answer = answer
        assert self._unhold is not None
        self._loop.call_soon_threadsafe(self._unhold.set)

    def wait_for_events(self, count: int, timeout: float = 30.0) -> bool:
        """Block until at least `count` events were accepted in all."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self.events) >= count, timeout)

    def event_ids(self) -> list[str]:
        """Return the ids of every event accepted, in order (duplicates included)."""
        with self._lock:
            return [str(event.get("id")) for event in self.events]

    def registered(self, app: str) -> list[dict[str, Any]]:
        """Return the function configs `app` registered last (none if it never did)."""
        accepted = [answer for answer in self.registrations if answer.functions is not None and answer.app == app]
        return accepted[-1].functions or [] if accepted else []

    # --- the server, on the loop thread ---------------------------------------

    async def _listen(self) -> None:
        self._release = asyncio.Event()
        self._unhold = asyncio.Event()
        self._server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        self._port = self._server.sockets[0].getsockname()[1]

    async def _close(self) -> None:
        assert self._server is not None and self._release is not None
        self._release.set()  # let hanging requests go
        # A connection accepted a moment ago (a probe's) reaches its handler before the server closes: asyncio
        # cannot make its transport once the server is closed, and would never close its socket.
        for _ in range(50):
            if not asyncio.all_tasks(self._loop) - {asyncio.current_task()} - self._handlers:
                break
            await asyncio.sleep(0.01)  # readiness polling, not waiting for time to pass
        self._server.close()
        handlers = set(self._handlers)
        for task in handlers:
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)
        await self._server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handler = asyncio.current_task()
        assert handler is not None
        self._handlers.add(handler)
        try:
            writer.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                request_line, *header_lines = head.decode("latin-1").split("\r\n")
                fields = (line.split(":", 1) for line in header_lines if ":" in line)
                headers = {name.strip().lower(): value.strip() for name, value in fields}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                method, path = request_line.split(" ")[:2]
                answer = await self._route(method, path.partition("?")[0], headers, body)
                if answer is None:
                    return  # close the connection without (the rest of) an answer
                status, content_type, payload = answer
                writer.write(_response(status, content_type, payload, length=len(payload)))
                await writer.drain()
        except _Truncated:
            writer.write(_response(200, "application/json", b'{"ids": [', length=100))
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, TimeoutError, asyncio.CancelledError):
            pass
        finally:
            self._handlers.discard(handler)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()  # before the loop stops, or the socket is left open

    async def _route(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer | None:
        if method == "POST" and path.startswith("/e/"):
            return await self._answer(path, body)
        if method == "POST" and path == "/fn/register":
            return self._register(headers, body)
        if method == "GET" and path.startswith("/v1/apps/") and path.endswith("/functions"):
            return self._functions(headers, path.removeprefix("/v1/apps/").removesuffix("/functions"))
        return _json(404, {"error": "not found", "status": 404})

    def _register(self, headers: dict[str, str], body: bytes) -> Answer:
        answer = registration.register(
            headers=headers, body=body, signing_key=self.signing_key, server_kind=self.server_kind
        )
        with self._lock:
            self.registrations.append(answer)
        if answer.functions is not None and self.on_register is not None:
            self.on_register(answer.functions)
        return answer.status, answer.content_type, answer.body

    def _functions(self, headers: dict[str, str], app: str) -> Answer:
        """pkg/api/apiv1/functions.go, GetAppFunctions: the app's functions, each by its slug (`id`)."""
        if self.signing_key is not None and not registration.authenticated(headers, self.signing_key):
            return 401, "text/plain; charset=utf-8", b"Authentication failed\n"
        functions = [{"id": config["id"], "name": config.get("name", "")} for config in self.registered(app)]
        return 200, "application/json", json.dumps(functions).encode()

    async def _answer(self, path: str, body: bytes) -> Answer | None:
        with self._lock:
            self.requests += 1
        self._first_request.set()
        behaviour = self.behaviour
        if behaviour == "hold":
            assert self._unhold is not None
            self._held.set()
            await asyncio.wait_for(self._unhold.wait(), HANG_LIMIT_SECONDS)
            behaviour = self._held_answer
        if behaviour == "hang":
            assert self._release is not None
            await asyncio.wait_for(self._release.wait(), HANG_LIMIT_SECONDS)
            raise ConnectionError("released without an answer")
        if behaviour == "slow":
            await asyncio.sleep(self.delay)
        if behaviour == "error500":
            return _json(500, {"error": "internal server error", "status": 500})
        if behaviour == "html":
            return 200, "text/html", b"<html><body>Bad gateway</body></html>"
        if behaviour == "badjson":
            return _json(200, {"ids": "not-a-list", "status": "ok?"})
        if behaviour == "truncated":
            raise _Truncated
        if behaviour == "reset":
            return None
        if behaviour == "unauthorized" or path != f"/e/{self.event_key}":
            # pkg/api/api.go, ReceiveEvent: an event key the server was not started with.
            return _json(401, {"status": 401, "message": "", "error": "Event key not found"})
        now = time.time()
        intake = event_intake.take(body, new_id=lambda: new_ulid(now), received_ms=int(now * 1000))
        self._accept(intake.taken)
        return _json(intake.status, intake.body)

    def _accept(self, events: list[dict[str, Any]]) -> None:
        with self._lock:
            self.events.extend(events)
            self._lock.notify_all()
        if self.on_event is not None:
            for event in events:
                self.on_event(event)


class _Truncated(Exception):
    """Answer with headers announcing 100 bytes, send fewer, and close."""


def _response(status: int, content_type: str, payload: bytes, *, length: int) -> bytes:
    head = (
        f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\n\r\n"
    )
    return head.encode() + payload


def _json(status: int, payload: dict[str, Any]) -> Answer:
    return status, "application/json", json.dumps(payload).encode()


def closed_port_url() -> str:
    """Return a loopback URL on which nothing listens: connections to it are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
