"""Inngest on loopback, as `inngest start` (or, without a signing key, `inngest dev`) runs it: one URL for all.

Its API (testsupport.event_api: the event API, `/fn/register`, the functions it knows)
and its executor (testsupport.executor) share the server's keys and clock. Give its
`url` to the app as INNGEST_BASE_URL; `sync(app_url)` is what `--sdk-url` (`-u` for the
dev server) makes the server do: the out-of-band sync (testsupport.registration.ping),
after which the SDK registers the app's functions with the API, and the executor calls
them as events arrive.
"""

from __future__ import annotations

from types import TracebackType

import httpx

from testsupport.event_api import EventAPI
from testsupport.executor import Executor
from testsupport.protocol import Clock
from testsupport.registration import Sync, ping
from testsupport.retries import Jitter


class InngestServer:
    def __init__(
        self, *, event_key: str, signing_key: str | None, clock: Clock | None = None, jitter: Jitter | None = None
    ) -> None:
        self.signing_key = signing_key
        self.server_kind = "cloud" if signing_key is not None else "dev"  # pkg/config: what each mode says it is
        self.executor = Executor(serve_url="", signing_key=signing_key, clock=clock, jitter=jitter)
        self.api = EventAPI(
            event_key=event_key,
            on_event=self.executor.submit,
            signing_key=signing_key,
            on_register=self.executor.learn,
            server_kind=self.server_kind,
        )
        self._http = httpx.Client(timeout=30.0)

    @property
    def url(self) -> str:
        return self.api.url

    def sync(self, app_url: str, *, host: str | None = None) -> Sync:
        """Sync the app at `app_url` out of band, as the server does for each `--sdk-url` (reaching it as `host`)."""
        return ping(self._http, app_url, signing_key=self.signing_key, server_kind=self.server_kind, host=host)

    def __enter__(self) -> InngestServer:
        self.api.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.executor.stop()
        self.api.stop()
        self._http.close()
