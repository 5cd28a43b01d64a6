"""The dispatch floor for bench/dispatch_latency.py: a bare view doing a fresh dispatch's unavoidable work.

Served by the same gunicorn, settings and middleware as `/api/cron/<job>` (the bench
URLconf adds it at `/bench/floor/<job>`), it runs the two statements a fresh dispatch
runs on the dispatch window table, each in its own autocommit transaction with
asynchronous commit as the product's are: the claim (`INSERT … ON CONFLICT
(dispatch_key) DO NOTHING RETURNING id`) and the close (`UPDATE … WHERE id = …`), with
one HTTP POST of the window's event to the same loopback event API between them. No
authentication, registry, mode resolution, SDK or logging: what a dispatch costs
beyond this is the product's own overhead.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from datetime import UTC, datetime

import httpx
import product
from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

_ASYNC_COMMIT = "(SELECT set_config('synchronous_commit', 'off', true)) AS async_commit"
_COLUMNS = (
    "dispatch_key, job, status, mode, source, correlation_id, window_start, window_seconds, requested_at, event_ids, "
    "publish_attempts, duplicate_ticks, latency_ms, error, claim, created_at, updated_at"
)
CLAIM = (
    f"INSERT INTO {product.WINDOWS_TABLE} ({_COLUMNS}) "  # noqa: S608 (constant names; values are parameters)
    "SELECT %s, %s, 'pending', 'dispatch', 'cron', %s, %s, 60, %s, %s::jsonb, 1, 0, NULL, '', 1, %s, %s "
    f"FROM {_ASYNC_COMMIT} "
    "ON CONFLICT (dispatch_key) DO NOTHING RETURNING id"
)
CLOSE = (
    f"UPDATE {product.WINDOWS_TABLE} SET status = 'enqueued', latency_ms = %s, error = '', updated_at = %s "  # noqa: S608
    f"FROM {_ASYNC_COMMIT} WHERE id = %s AND claim = 1 RETURNING id"
)
_client_lock = threading.Lock()
_clients: list[httpx.Client] = []


@csrf_exempt
def floor(request: HttpRequest, job: str) -> JsonResponse:
    """Claim a window row, publish one event, close the row; answer like a fresh dispatch."""
    started = time.perf_counter()
    now = timezone.now()
    start = now.replace(second=0, microsecond=0)
    key = f"floor:{job}:{start.astimezone(UTC):%Y-%m-%dT%H:%M}"
    correlation_id = str(uuid.uuid4())
    event_id = f"bench/floor:{key}"
    with connection.cursor() as cursor:
        cursor.execute(CLAIM, [key, job, correlation_id, start, now, json.dumps([event_id]), now, now])
        row = cursor.fetchone()
    if row is None:
        return JsonResponse({"error": f"window {key} is taken"}, status=409)
    _publish(event_id, key=key, correlation_id=correlation_id, now=now, start=start)
    latency_ms = round((time.perf_counter() - started) * 1000)
    with connection.cursor() as cursor:
        cursor.execute(CLOSE, [latency_ms, now, row[0]])
    body = {"mode": "dispatch", "job": job, "dispatchKey": key, "correlationId": correlation_id, "enqueued": True}
    return JsonResponse({**body, "eventIds": [event_id], "latencyMs": latency_ms}, status=202)


def _publish(event_id: str, *, key: str, correlation_id: str, now: datetime, start: datetime) -> None:
    data = {
        "source": "cron",
        "requestedAt": now.isoformat(),
        "dispatchKey": key,
        "correlationId": correlation_id,
        "dispatchWindowStart": start.isoformat(),
        "dispatchWindowSeconds": 60,
    }
    event = {"name": "bench/floor", "id": event_id, "data": data, "ts": int(now.timestamp() * 1000)}
    response = _client().post(f"/e/{settings.INNGEST_EVENT_KEY}", json=[event])
    response.raise_for_status()


def _client() -> httpx.Client:
    """Return this process's HTTP client (keep-alive to the event API), as the product keeps one per process."""
    with _client_lock:
        if not _clients:
            base_url, timeout = settings.INNGEST_EVENT_API_BASE_URL, settings.INNGEST_PUBLISH_TIMEOUT_SECONDS
            _clients.append(httpx.Client(base_url=base_url, timeout=timeout))
        return _clients[0]
