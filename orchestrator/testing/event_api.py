"""A loopback Inngest event API for tests: `POST /e/<event key>`, as the SDK's client calls it.

It answers like Inngest's event API (`{"ids": [...], "status": 200}`), records every
event it accepts, and can be told to misbehave, one behaviour at a time:

- ``ok``: accept (the default);
- ``hang``: accept the connection and never answer (until the server stops);
- ``slow``: answer ``ok`` after ``delay`` seconds;
- ``error500``: answer 500 (the SDK retries these);
- ``html``: answer 200 with an HTML body (not JSON);
- ``unauthorized``: answer 401 ``{"error": ...}``, as for a wrong event key;
- ``badjson``: answer 200 with JSON of the wrong shape (``ids`` not a list);
- ``truncated``: announce a longer body than it sends, then close the connection;
- ``reset``: close the connection without answering.

A refused connection needs no server at all: `closed_port_url()` names a port
that nothing listens on. Accepted events can be forwarded (`on_event`) to the
loopback executor, which then runs the functions they trigger.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

Behaviour = Literal["ok", "hang", "slow", "error500", "html", "unauthorized", "badjson", "truncated", "reset"]
HANG_LIMIT_SECONDS = 60.0


class EventAPI:
    def __init__(self, *, event_key: str, on_event: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.event_key = event_key
        self.on_event = on_event
        self.behaviour: Behaviour = "ok"
        self.delay = 0.0
        self.events: list[dict[str, Any]] = []
        self.requests = 0
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._first_request = threading.Event()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="event-api", daemon=True
        )

    @property
    def url(self) -> str:
        """Return the base URL to give the SDK as INNGEST_EVENT_API_BASE_URL."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> EventAPI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()  # let hanging requests go
        self._server.shutdown()
        self._server.server_close()

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

    def event_ids(self) -> list[str]:
        """Return the ids of every event accepted, in order (duplicates included)."""
        with self._lock:
            return [str(event.get("id")) for event in self.events]

    def _accept(self, events: list[dict[str, Any]]) -> list[str]:
        with self._lock:
            self.events.extend(events)
        if self.on_event is not None:
            for event in events:
                self.on_event(event)
        return [str(event.get("id") or "") for event in events]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # Send each answer in one segment, at once: no Nagle, no delayed-ACK stalls.
            disable_nagle_algorithm = True
            wbufsize = 64 * 1024

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with api._lock:
                    api.requests += 1
                api._first_request.set()
                behaviour = api.behaviour
                if behaviour == "hang":
                    api._release.wait(HANG_LIMIT_SECONDS)
                    return
                if behaviour == "slow":
                    time.sleep(api.delay)
                if behaviour == "error500":
                    return self._json(500, {"error": "internal server error", "status": 500})
                if behaviour == "html":
                    return self._send(200, "text/html", b"<html><body>Bad gateway</body></html>")
                if behaviour == "badjson":
                    return self._json(200, {"ids": "not-a-list", "status": "ok?"})
                if behaviour == "truncated":
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", "100")
                    self.end_headers()
                    self.wfile.write(b'{"ids": [')
                    self.close_connection = True
                    return None
                if behaviour == "reset":
                    self.close_connection = True
                    return None
                if behaviour == "unauthorized" or self.path != f"/e/{api.event_key}":
                    return self._json(401, {"error": "Event key not found", "status": 401})
                try:
                    events = json.loads(body)
                except ValueError:
                    return self._json(400, {"error": "body is not JSON", "status": 400})
                events = events if isinstance(events, list) else [events]
                self._json(200, {"ids": api._accept(events), "status": 200})

            def _json(self, status: int, payload: dict[str, Any]) -> None:
                self._send(status, "application/json", json.dumps(payload).encode())

            def _send(self, status: int, content_type: str, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


def closed_port_url() -> str:
    """Return a loopback URL on which nothing listens: connections to it are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"
