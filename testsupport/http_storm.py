"""A child process that sends many concurrent cron calls over HTTP, from one thread each.

Usage: python -m testsupport.http_storm URL THREADS   (the bearer secret in STORM_AUTHORIZATION)

It prints READY once its threads are waiting, waits for a line on stdin (so that
every process starts together), sends one GET per thread at once, and prints one
line per answer: RESULT {"status": ..., "body": ...} (status 0 for a transport
error, the body as JSON, or {"raw": ...} when it was not JSON).
"""

from __future__ import annotations

import json
import os
import sys
import threading
from typing import Any

import httpx

TIMEOUT_SECONDS = 120.0


def main() -> None:
    url, threads = sys.argv[1], int(sys.argv[2])
    headers = {"Authorization": os.environ["STORM_AUTHORIZATION"], "X-Correlation-Id": f"storm-{os.getpid()}"}
    barrier = threading.Barrier(threads + 1)
    lines: list[str] = []
    lock = threading.Lock()

    def call() -> None:
        barrier.wait()
        result: dict[str, Any]
        try:
            response = httpx.get(url, headers=headers, timeout=TIMEOUT_SECONDS)
            try:
                result = {"status": response.status_code, "body": response.json()}
            except ValueError:
                result = {"status": response.status_code, "body": {"raw": response.text[:300]}}
        except httpx.HTTPError as exc:
            result = {"status": 0, "body": {"raw": f"{type(exc).__name__}: {exc}"}}
        with lock:
            lines.append("RESULT " + json.dumps(result))

    workers = [threading.Thread(target=call) for _ in range(threads)]
    for worker in workers:
        worker.start()
    print("READY", flush=True)
    sys.stdin.readline()
    barrier.wait()
    for worker in workers:
        worker.join()
    for line in lines:
        print(line, flush=True)


if __name__ == "__main__":
    main()
