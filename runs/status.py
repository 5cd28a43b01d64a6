"""Per-job status blobs in the cache: `job:v1:{scope}:{jobName}`, 7-day TTL.

`output` carries a compact summary of the last run beside the contract's fields.

A cache outage is logged and never fails the run that writes the blob.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from redis.exceptions import RedisError

from core.errors import one_line
from core.timefmt import iso_utc

logger = logging.getLogger(__name__)

# No ':' '*' '?' '[' or whitespace: a scope or name can never reach another key.
SCOPE_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
NAME_RE = re.compile(r"[A-Za-z0-9._-]{1,100}")
BLOB_FIELDS = (
    "status",
    "startedAt",
    "finishedAt",
    "durationMs",
    "attempt",
    "lastError",
    "source",
    "updatedAt",
    "dispatchKey",
    "correlationId",
    "runId",
    "output",
)


def status_key(scope: str, job_name: str) -> str:
    """Return the blob key; raise ValueError for a scope or name that could escape it."""
    if not SCOPE_RE.fullmatch(scope):
        raise ValueError(f"scope {scope!r} must match {SCOPE_RE.pattern} (a tenant id or 'global')")
    if not NAME_RE.fullmatch(job_name):
        raise ValueError(f"job name {job_name!r} must match {NAME_RE.pattern}")
    return f"job:v1:{scope}:{job_name}"


def status_write(*, scope: str, job_name: str, now: datetime, **fields: Any) -> bool:
    """Merge `fields` into the blob and stamp `updatedAt`; return False if the cache is down."""
    key = status_key(scope, job_name)
    unknown = set(fields) - set(BLOB_FIELDS)
    if unknown:
        raise ValueError(f"unknown status blob fields {sorted(unknown)}; allowed: {', '.join(BLOB_FIELDS)}")
    try:
        blob = {name: None for name in BLOB_FIELDS} | (cache.get(key) or {})
        blob.update(fields, updatedAt=iso_utc(now))
        cache.set(key, blob, timeout=settings.STATUS_BLOB_TTL_SECONDS)
    except (RedisError, OSError) as exc:
        logger.warning(
            "status blob not written: cache unavailable",
            extra={"action": "status_write", "key": key, "error": one_line(exc)},
        )
        return False
    return True


def status_read(*, scope: str, job_name: str) -> dict[str, Any] | None:
    """Return the blob, or None when it is absent or the cache is down."""
    key = status_key(scope, job_name)
    try:
        blob: dict[str, Any] | None = cache.get(key)
    except (RedisError, OSError) as exc:
        logger.warning(
            "status blob not read: cache unavailable",
            extra={"action": "status_read", "key": key, "error": one_line(exc)},
        )
        return None
    return blob
