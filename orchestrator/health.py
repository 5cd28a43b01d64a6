"""Reachability of the database and the cache, for `GET /api/health`.

Each probe is bounded by the connection timeouts in settings (DATABASE_CONNECT_TIMEOUT,
REDIS_CONNECT_TIMEOUT, REDIS_SOCKET_TIMEOUT) and reports only what is safe to show
anyone: whether it worked, how long it took, and the error's type. The full error
goes to the log.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.core.cache import DEFAULT_CACHE_ALIAS, caches
from django.core.exceptions import ImproperlyConfigured
from django.db import Error as DatabaseError
from django.db import connection
from redis.exceptions import RedisError

from core.errors import one_line

logger = logging.getLogger(__name__)

PROBE_KEY = "health:v1:probe"


def health_probe() -> dict[str, Any]:
    """Return the health document: overall status, then one entry per dependency."""
    database, cache = database_probe(), cache_probe()
    ok = database["ok"] and cache["ok"]
    return {"status": "ok" if ok else "unavailable", "database": database, "cache": cache}


def database_probe() -> dict[str, Any]:
    """Run `SELECT 1` on the default database."""
    started = time.perf_counter()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except (DatabaseError, ImproperlyConfigured) as exc:  # the second: DATABASE_URL unreadable (orchestrator.E008)
        logger.error("health: database unreachable", extra={"action": "health", "error": one_line(exc)})
        return {"ok": False, "vendor": connection.vendor, "error": f"unreachable ({type(exc).__name__})"}
    return {"ok": True, "vendor": connection.vendor, "latencyMs": _ms_since(started)}


def cache_probe() -> dict[str, Any]:
    """Write and read back a short-lived key in the default cache."""
    started = time.perf_counter()
    store = caches[DEFAULT_CACHE_ALIAS]
    backend = type(store).__name__
    token = f"{started:.9f}"
    try:
        store.set(PROBE_KEY, token, timeout=60)
        read_back = store.get(PROBE_KEY)
    except (RedisError, OSError) as exc:
        logger.error("health: cache unreachable", extra={"action": "health", "error": one_line(exc)})
        return {"ok": False, "backend": backend, "error": f"unreachable ({type(exc).__name__})"}
    if read_back != token:
        logger.error("health: cache did not return the value just written", extra={"action": "health"})
        return {"ok": False, "backend": backend, "error": "the value written was not read back"}
    return {"ok": True, "backend": backend, "latencyMs": _ms_since(started)}


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)
