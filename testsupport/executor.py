"""A loopback Inngest executor for tests: it drives `/api/inngest` the way Inngest does.

It follows the open-source server (github.com/inngest/inngest; each rule names the
file it follows) and the pinned SDK's protocol (HTTP execution, request version 1):

- **sync** in band (`sync()`, as Inngest Cloud does), or out of band: the app registers
  at `/fn/register` (testsupport.registration), which hands its configs to `learn()`;
- **calls** are signed (testsupport.protocol) and carry `ctx`, the event, the memoized
  steps; the 206 step loop memoizes `StepRun`/`StepFailed`, retries `StepError` with
  `ctx.attempt` + 1 (each step its own attempts), follows `StepPlanned`;
- **a queue on a clock** (testsupport.run_queue): every call is an item due at a time
  of the injected `Clock`; a failed attempt (a non-2xx, a failed connection, even a 2xx
  the SDK did not give) comes back after the real backoff and jitter or `Retry-After`
  (testsupport.retries), until the last attempt or `X-Inngest-No-Retry`; of the items
  due, the oldest run's goes first, one call at a time: concurrency 1 per step, not per
  run. Tests move the clock (`advance`) or let the executor jump to each next call
  (`settle`, `deliver`): nothing sleeps;
- a failed run **publishes `inngest/function.failed`** after it ended (its id the run
  id), queued like any other event, for the failure handler (no retries);
- an event id, and a function's idempotency key, start one run per function for 24
  hours of the clock (`force=True` skips both: a re-delivery under a new run id);
- `fire_cron(function id)` starts a cron-triggered function as Inngest's scheduler does.
"""

from __future__ import annotations

import queue
import re
import threading
import time
from typing import Any

import httpx
import jcs

from testsupport.protocol import (
    FAILED_EVENT,
    Clock,
    Function,
    ProtocolError,
    Run,
    error_body,
    failure_event,
    function_from_config,
    new_ulid,
    scheduled_event,
    signed_headers,
    verify_response,
    with_query,
)
from testsupport.retries import Jitter, backoff, random_jitter, retry_after
from testsupport.run_queue import Item, RunQueue

NOT_SDK = {"name": "Error", "message": "response did not come from an Inngest SDK"}  # httpdriver.go, ErrNotSDK
_EXPRESSION_RE = re.compile(r"event\.data\.(\w+) == '([^']*)'")


class Executor:
    def __init__(
        self,
        *,
        serve_url: str,
        signing_key: str | None,
        clock: Clock | None = None,
        jitter: Jitter | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.serve_url = serve_url
        self.signing_key = signing_key
        self.clock = clock or Clock()
        self.jitter = jitter or random_jitter()
        self.functions: dict[str, Function] = {}
        self.runs: list[Run] = []
        self.events: list[dict[str, Any]] = []  # every event received, failure events included
        self._calls = RunQueue(self.clock)
        self._state = threading.Lock()
        self._drive = threading.RLock()  # one call at a time
        self._http = httpx.Client(timeout=timeout)
        self._inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._worker: threading.Thread | None = None

    # --- sync ---------------------------------------------------------------

    def sync(self) -> dict[str, Function]:
        """Sync the app in band (a signed PUT, as Inngest Cloud does) and learn its functions."""
        body = jcs.canonicalize({"url": self.serve_url})
        response = self._http.put(
            self.serve_url,
            content=body,
            headers={**self._headers(body), "X-Inngest-Sync-Kind": "in_band"},
        )
        self._verify(response)
        if response.status_code != 200:
            raise ProtocolError(f"sync answered {response.status_code}: {response.text[:300]}")
        return self.learn(response.json()["functions"])

    def learn(self, configs: list[dict[str, Any]]) -> dict[str, Function]:
        """Take the app's function configs as its functions (a sync replaces the functions it no longer lists)."""
        functions = {config["id"]: function_from_config(config) for config in configs}
        with self._state:
            self.functions = functions
        return functions

    # --- events in ----------------------------------------------------------

    def send(self, event: dict[str, Any], *, force: bool = False) -> list[Run]:
        """Start a run of every function `event` triggers and admits; return them (nothing runs yet).

        `force` skips the event-id and idempotency deduplication: a re-delivery of
        the event under a new run id.
        """
        with self._state:
            self.events.append(event)
            functions = list(self.functions.values())
        return [
            self._start(function, event)
            for function in functions
            if self._triggers(function, event) and (force or self._calls.admit(function, event))
        ]

    def deliver(self, event: dict[str, Any], *, force: bool = False) -> list[Run]:
        """Send `event` and settle: return the runs it started, each ended (retries waited out on the clock)."""
        runs = self.send(event, force=force)
        self.settle()
        return runs

    def fire_cron(self, function_id: str) -> Run:
        """Run the cron-triggered function `function_id` once, to its end, as its schedule would."""
        function = self.functions[function_id]
        if function.cron is None:
            raise ProtocolError(f"{function_id} has no cron trigger")
        run = self._start(function, scheduled_event(function, now=self.clock.now()))
        self.settle()
        return run

    def submit(self, event: dict[str, Any]) -> None:
        """Queue `event` for the background worker (what the event API does with accepted events)."""
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="executor", daemon=True)
            self._worker.start()
        self._inbox.put(event)

    def wait_idle(self, timeout: float = 120.0) -> None:
        """Block until every submitted event has been processed."""
        deadline = time.monotonic() + timeout
        while self._inbox.unfinished_tasks:
            if time.monotonic() > deadline:
                raise TimeoutError("the executor did not go idle")
            with self._inbox.all_tasks_done:
                self._inbox.all_tasks_done.wait(timeout=1.0)

    def stop(self) -> None:
        if self._worker is not None:
            self._inbox.put(None)
            self._worker.join(timeout=30)
        self._http.close()

    def _work(self) -> None:
        while True:
            event = self._inbox.get()
            try:
                if event is None:
                    return
                self.deliver(event)
            finally:
                self._inbox.task_done()

    def _triggers(self, function: Function, event: dict[str, Any]) -> bool:
        if event.get("name") != function.trigger_event:
            return False
        if function.expression is None:
            return True
        match = _EXPRESSION_RE.fullmatch(function.expression)
        if match is None:
            raise NotImplementedError(f"trigger expression {function.expression!r} is not supported")
        return (event.get("data") or {}).get(match.group(1)) == match.group(2)

    # --- the queue ----------------------------------------------------------

    def run_due(self) -> None:
        """Make every call that is due on the clock now, the oldest run's first, until none is due."""
        with self._drive:
            while (item := self._calls.next_due()) is not None:
                self._call(item)

    def advance(self, seconds: float) -> None:
        """Move the clock on by `seconds`, then make the calls that came due."""
        self.clock.advance(seconds)
        self.run_due()

    def settle(self) -> None:
        """Make every call there is, moving the clock to each next one, until no run is left waiting."""
        with self._drive:
            while True:
                self.run_due()
                later = self._calls.next_time()
                if later is None:
                    return
                self.clock.advance_to(later)

    def waiting(self) -> list[tuple[Run, float]]:
        """Return each run waiting for a call, with the time on the clock its call is due."""
        return self._calls.waiting()

    def _start(self, function: Function, event: dict[str, Any]) -> Run:
        now = self.clock.now()
        run = Run(function_id=function.id, run_id=new_ulid(now), event=event, started_at=now)
        with self._state:
            self.runs.append(run)
        self._calls.put(Item(run, function, at=now))
        return run

    # --- one call -----------------------------------------------------------

    def _call(self, item: Item) -> None:
        run, function = item.run, item.function
        run.max_attempt = max(run.max_attempt, item.attempt)
        try:
            response = self._post(item)
        except httpx.TransportError as exc:  # httpdriver.go: no answer is a failed attempt
            self._failed(item, {"name": type(exc).__name__, "message": str(exc)}, response=None)
            return
        if "x-inngest-sdk" not in response.headers:  # httpdriver.go, ErrNotSDK: even a 2xx
            self._failed(item, NOT_SDK | {"status": response.status_code}, response=response)
            return
        self._verify(response)
        if response.status_code == 200:
            self._end(run, function, status="completed", output=response.json())
        elif response.status_code == 206:
            self._step(item, response)
        else:
            self._failed(item, error_body(response), response=response)

    def _post(self, item: Item) -> httpx.Response:
        run, function = item.run, item.function
        payload = {
            "ctx": {
                "attempt": item.attempt,
                "disable_immediate_execution": False,
                "max_attempts": function.max_attempts,
                "run_id": run.run_id,
                "stack": {"stack": list(run.stack)},
            },
            "event": run.event,
            "events": [run.event],
            "steps": dict(run.steps),
            "use_api": False,
            "version": 1,
        }
        body = jcs.canonicalize(payload)
        url = with_query(function.url, stepId=item.target or "step")
        run.requests += 1
        return self._http.post(url, content=body, headers=self._headers(body))

    def _step(self, item: Item, response: httpx.Response) -> None:
        """Handle one op of a 206 (pkg/execution/executor/executor.go, handleGeneratorOp)."""
        ops = response.json()
        if not isinstance(ops, list) or len(ops) != 1:
            raise ProtocolError(f"expected one op, got {ops!r}")
        run, function, op = item.run, item.function, ops[0]
        kind, step_id = op["op"], op["id"]
        now = self.clock.now()
        if kind in ("StepRun", "StepFailed"):
            run.steps[step_id] = {"data": op.get("data")} if kind == "StepRun" else {"error": op.get("error")}
            run.stack.append(step_id)
            self._calls.put(Item(run, function, at=now))
        elif kind == "StepPlanned":
            self._calls.put(Item(run, function, at=now, attempt=item.attempt, target=step_id))
        elif kind == "StepError":
            if item.attempt + 1 >= function.max_attempts:
                raise ProtocolError("StepError on the last attempt: the SDK should send StepFailed")
            self._failed(item, op.get("error") or {}, response=response)
        else:
            raise ProtocolError(f"unsupported op {kind!r}")

    def _failed(self, item: Item, error: dict[str, Any], *, response: httpx.Response | None) -> None:
        """Try the step again later (pkg/execution/queue/process.go), or end the run failed."""
        run, function = item.run, item.function
        no_retry = response is not None and response.headers.get("x-inngest-no-retry") == "true"
        if no_retry or item.attempt + 1 >= function.max_attempts:
            self._end(run, function, status="failed", error=error)
            return
        wait = backoff(item.attempt, jitter=self.jitter)
        if response is not None and (header := response.headers.get("retry-after")):
            wait = retry_after(header, received_at=time.time()) or wait
        retry = Item(run, function, at=self.clock.now() + wait, attempt=item.attempt + 1, target=item.target)
        self._calls.put(retry)

    def _end(
        self, run: Run, function: Function, *, status: str, output: Any = None, error: dict[str, Any] | None = None
    ) -> None:
        now = self.clock.now()
        run.status, run.output, run.error, run.ended_at = status, output, error, now
        if status == "failed" and run.event.get("name") != FAILED_EVENT:  # finalize.go: never recursively
            self.send(failure_event(function, run, error, now=now))

    # --- signing (testsupport.protocol) -------------------------------------

    def _headers(self, body: bytes, *, signed_at: int | None = None) -> dict[str, str]:
        """Return the headers Inngest sends with `body`, signed now (or at `signed_at`, a unix time).

        Without a signing key (the dev server) nothing is signed.
        """
        if self.signing_key is None:
            return {"Content-Type": "application/json", "X-Inngest-Server-Kind": "dev"}
        return signed_headers(body, signing_key=self.signing_key, signed_at=signed_at)

    def _verify(self, response: httpx.Response) -> None:
        if self.signing_key is not None:
            verify_response(response, signing_key=self.signing_key)
