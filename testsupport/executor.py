"""A loopback Inngest executor for tests: it drives `/api/inngest` the way Inngest does.

It follows the SDK protocol of the pinned Inngest SDK (HTTP execution, request
version 1), in cloud mode:

- **sync**: a signed in-band `PUT` to the serve URL returns the app's function
  configs (triggers, retries, concurrency, idempotency); the response signature
  is verified;
- **requests** are signed as Inngest signs them (`testsupport.protocol`) and
  carry `ctx` (run id, attempt, max_attempts, stack), the event, memoized steps;
- the **step loop**: a 206 answer lists ops. `StepRun` with data is memoized
  and the function called again; `StepError` is retried with `ctx.attempt` + 1
  (each step has its own attempts, as in Inngest); `StepFailed` memoizes the
  error and calls again so the function can see it; `StepPlanned` targets the
  step with `stepId`. A 200 completes the run; a 500 is retried until the last
  attempt, or at once terminal with `X-Inngest-No-Retry: true`;
- a failed run sends **`inngest/function.failed`** to the function's failure
  handler (`<fn id>-failure`, matched by its trigger expression), no retries;
- **deduplication**: an event id starts at most one run per function, and the
  function's idempotency key (`event.data.<path>`) at most one run per key;
  `deliver(..., force=True)` skips both, like a re-delivery under a new run id;
- **concurrency 1**: runs of one function never overlap;
- a function with a **cron trigger** is started by `fire_cron(function id)`, as
  Inngest's scheduler starts it at each tick of its schedule: with an
  `inngest/scheduled.timer` event carrying the schedule.

Retries happen at once (no backoff waits): tests pass time in, they do not wait.
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
    Function,
    ProtocolError,
    Run,
    error_body,
    idempotency_key,
    new_run_id,
    signed_headers,
    verify_response,
    with_query,
)

FAILED_EVENT = "inngest/function.failed"
SCHEDULED_EVENT = "inngest/scheduled.timer"
_EXPRESSION_RE = re.compile(r"event\.data\.(\w+) == '([^']*)'")


class Executor:
    def __init__(self, *, serve_url: str, signing_key: str, timeout: float = 60.0) -> None:
        self.serve_url = serve_url
        self.signing_key = signing_key
        self.functions: dict[str, Function] = {}
        self.runs: list[Run] = []
        self._seen_events: set[tuple[str, str]] = set()
        self._seen_keys: set[tuple[str, str]] = set()
        self._locks: dict[str, threading.Lock] = {}
        self._state = threading.Lock()
        self._http = httpx.Client(timeout=timeout)
        self._queue: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._worker: threading.Thread | None = None

    # --- sync ---------------------------------------------------------------

    def sync(self) -> dict[str, Function]:
        """Sync the app (signed in-band PUT) and learn its functions."""
        body = jcs.canonicalize({"url": self.serve_url})
        response = self._http.put(
            self.serve_url,
            content=body,
            headers={**self._headers(body), "X-Inngest-Sync-Kind": "in_band"},
        )
        self._verify(response)
        if response.status_code != 200:
            raise ProtocolError(f"sync answered {response.status_code}: {response.text[:300]}")
        for config in response.json()["functions"]:
            step = config["steps"]["step"]
            trigger = config["triggers"][0]
            limits = config.get("concurrency") or [{}]
            self.functions[config["id"]] = Function(
                id=config["id"],
                trigger_event=trigger.get("event", ""),
                cron=trigger.get("cron"),
                expression=trigger.get("expression"),
                max_attempts=(step.get("retries") or {"attempts": 3})["attempts"] + 1,
                concurrency=limits[0].get("limit"),
                idempotency=config.get("idempotency"),
                url=step["runtime"]["url"],
            )
        return self.functions

    # --- delivery -----------------------------------------------------------

    def submit(self, event: dict[str, Any]) -> None:
        """Queue `event` for the background worker (what the event API does with accepted events)."""
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="executor", daemon=True)
            self._worker.start()
        self._queue.put(event)

    def wait_idle(self, timeout: float = 120.0) -> None:
        """Block until every submitted event has been processed."""
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                raise TimeoutError("the executor did not go idle")
            with self._queue.all_tasks_done:
                self._queue.all_tasks_done.wait(timeout=1.0)

    def stop(self) -> None:
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join(timeout=30)
        self._http.close()

    def deliver(self, event: dict[str, Any], *, force: bool = False) -> list[Run]:
        """Run every function `event` triggers, to completion; return the runs started.

        `force` skips the event-id and idempotency deduplication: a re-delivery
        of the event under a new run id.
        """
        runs = []
        for function in list(self.functions.values()):
            if not self._triggers(function, event) or not self._admit(function, event, force=force):
                continue
            runs.append(self._run(function, event))
        return runs

    def fire_cron(self, function_id: str) -> Run:
        """Run the cron-triggered function `function_id` once, to completion, as its schedule would."""
        function = self.functions[function_id]
        if function.cron is None:
            raise ProtocolError(f"{function_id} has no cron trigger")
        event = {
            "name": SCHEDULED_EVENT,
            "id": new_run_id(),
            "ts": int(time.time() * 1000),
            "data": {"cron": function.cron},
        }
        return self._run(function, event)

    def _work(self) -> None:
        while True:
            event = self._queue.get()
            try:
                if event is None:
                    return
                self.deliver(event)
            finally:
                self._queue.task_done()

    def _triggers(self, function: Function, event: dict[str, Any]) -> bool:
        if event.get("name") != function.trigger_event:
            return False
        if function.expression is None:
            return True
        match = _EXPRESSION_RE.fullmatch(function.expression)
        if match is None:
            raise NotImplementedError(f"trigger expression {function.expression!r} is not supported")
        return (event.get("data") or {}).get(match.group(1)) == match.group(2)

    def _admit(self, function: Function, event: dict[str, Any], *, force: bool) -> bool:
        with self._state:
            if force:
                return True
            event_id = str(event.get("id") or "")
            if event_id and (function.id, event_id) in self._seen_events:
                return False
            key = idempotency_key(function.idempotency, event)
            if key is not None and (function.id, key) in self._seen_keys:
                return False
            if event_id:
                self._seen_events.add((function.id, event_id))
            if key is not None:
                self._seen_keys.add((function.id, key))
            return True

    # --- one run ------------------------------------------------------------

    def _run(self, function: Function, event: dict[str, Any]) -> Run:
        run = Run(function_id=function.id, run_id=new_run_id(), event=event)
        with self._state:
            self.runs.append(run)
            lock = self._locks.setdefault(function.id, threading.Lock())
        with lock:  # concurrency 1 per function
            self._execute(function, run)
        if run.status == "failed" and not function.id.endswith("-failure"):
            self.deliver(
                {
                    "name": FAILED_EVENT,
                    "id": new_run_id(),
                    "ts": int(time.time() * 1000),
                    "data": {"function_id": function.id, "run_id": run.run_id, "error": run.error, "event": event},
                }
            )
        return run

    def _execute(self, function: Function, run: Run) -> None:
        attempt, target, stack = 0, None, list[str]()
        while True:
            response = self._call(function, run, attempt=attempt, target=target, stack=stack)
            run.max_attempt = max(run.max_attempt, attempt)
            if response.status_code == 200:
                run.status, run.output = "completed", response.json()
                return
            if response.status_code == 206:
                ops = response.json()
                if not isinstance(ops, list) or len(ops) != 1:
                    raise ProtocolError(f"expected one op, got {ops!r}")
                op = ops[0]
                kind, step_id = op["op"], op["id"]
                if kind == "StepRun":
                    run.steps[step_id] = {"data": op.get("data")}
                    stack.append(step_id)
                    attempt, target = 0, None
                elif kind == "StepPlanned":
                    target = step_id
                elif kind == "StepError":
                    if attempt + 1 >= function.max_attempts:
                        raise ProtocolError("StepError on the last attempt: the SDK should send StepFailed")
                    attempt += 1
                elif kind == "StepFailed":
                    run.steps[step_id] = {"error": op.get("error")}
                    stack.append(step_id)
                    attempt, target = 0, None
                else:
                    raise ProtocolError(f"unsupported op {kind!r}")
                continue
            error = error_body(response)
            if response.headers.get("x-inngest-no-retry") == "true" or attempt + 1 >= function.max_attempts:
                run.status, run.error = "failed", error
                return
            attempt += 1

    def _call(
        self, function: Function, run: Run, *, attempt: int, target: str | None, stack: list[str]
    ) -> httpx.Response:
        payload = {
            "ctx": {
                "attempt": attempt,
                "disable_immediate_execution": False,
                "max_attempts": function.max_attempts,
                "run_id": run.run_id,
                "stack": {"stack": list(stack)},
            },
            "event": run.event,
            "events": [run.event],
            "steps": dict(run.steps),
            "use_api": False,
            "version": 1,
        }
        body = jcs.canonicalize(payload)
        url = with_query(function.url, stepId=target or "step")
        response = self._http.post(url, content=body, headers=self._headers(body))
        run.requests += 1
        self._verify(response)
        return response

    # --- signing (testsupport.protocol) -------------------------------------

    def _headers(self, body: bytes, *, signed_at: int | None = None) -> dict[str, str]:
        """Return the headers Inngest sends with `body`, signed now (or at `signed_at`, a unix time)."""
        return signed_headers(body, signing_key=self.signing_key, signed_at=signed_at)

    def _verify(self, response: httpx.Response) -> None:
        verify_response(response, signing_key=self.signing_key)
