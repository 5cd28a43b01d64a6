"""Enqueueing background jobs: validation first, then one insert the database can refuse."""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction

from jobs.exceptions import InvalidJob, UnknownKind
from jobs.hooks import jobs_due
from jobs.models import DEFAULT_QUEUE, BackgroundJob
from jobs.registry import Handler, get_handler, registered_kinds
from jobs.retry import MAX_ATTEMPTS_LIMIT, handler_policy, task_policy
from jobs.taskcall import TaskHandler, task_arguments

logger = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 256 * 1024
# Deeper JSON would reach Python's recursion limit in the JSON encoders on the way to
# the database or a handler (a 500, not a refusal), so it is refused at enqueue.
MAX_PAYLOAD_DEPTH = 100
PRIORITY_RANGE = (-100, 100)
MAX_RUN_AFTER = timedelta(days=366)
TENANT_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
QUEUE_RE = re.compile(r"[A-Za-z0-9._-]{1,64}")
RESERVED_SCOPE = "global"


@dataclass(frozen=True)
class EnqueueResult:
    job: BackgroundJob
    created: bool


def job_enqueue(
    *,
    kind: str,
    now: datetime,
    payload: Any = None,
    tenant: str = "",
    dedupe_key: str | None = None,
    run_after: datetime | None = None,
    max_attempts: int | None = None,
    priority: int = 0,
    queue: str = DEFAULT_QUEUE,
) -> EnqueueResult:
    """Enqueue a job, or return the live job holding the same (tenant, dedupe_key).

    `max_attempts` defaults to the kind's retry policy: its task's (one attempt unless
    the task or its backend says otherwise), or five for a @job_handler function
    (jobs.retry). A task's job gets a random result id. Raise InvalidJob (nothing
    written) when any argument is invalid.
    """
    payload = {} if payload is None else payload
    handler = _validate(
        kind=kind,
        payload=payload,
        tenant=tenant,
        dedupe_key=dedupe_key,
        run_after=run_after,
        max_attempts=max_attempts,
        priority=priority,
        queue=queue,
        now=now,
    )
    task = handler.task if isinstance(handler, TaskHandler) else None
    if max_attempts is None:
        max_attempts = (handler_policy() if task is None else task_policy(task)).max_attempts
    fields = {
        "kind": kind,
        "payload": payload,
        "tenant": tenant,
        "dedupe_key": dedupe_key,
        "run_after": run_after or now,
        "max_attempts": max_attempts,
        "priority": priority,
        "queue": queue,
        "created_at": now,
        "result_id": None if task is None else uuid.uuid4(),
    }
    if dedupe_key is None:
        return _created(BackgroundJob.objects.create(**fields), now=now)
    # The partial unique index is the guard; a live job holding the key wins. A
    # job that finishes between the refused insert and the lookup frees the key,
    # so try again (bounded: each round means another job just finished).
    for _ in range(3):
        try:
            with transaction.atomic():
                job = BackgroundJob.objects.create(**fields)
            return _created(job, now=now)
        except IntegrityError:
            live = BackgroundJob.objects.filter(
                tenant=tenant,
                dedupe_key=dedupe_key,
                status__in=[BackgroundJob.Status.PENDING, BackgroundJob.Status.RUNNING],
            ).first()
            if live is not None:
                logger.info(
                    "job deduplicated",
                    extra={"action": "job_enqueue", "jobId": live.pk, "kind": kind, "tenant": tenant},
                )
                return EnqueueResult(job=live, created=False)
    raise InvalidJob("dedupeKey", "the key is contended by jobs finishing right now; retry the request")


def _created(job: BackgroundJob, *, now: datetime) -> EnqueueResult:
    if job.run_after <= now:
        jobs_due(now=now)  # in dispatch mode, a drain within a second or two (dispatch.drain)
    return EnqueueResult(job=job, created=True)


def _validate(
    *,
    kind: Any,
    payload: Any,
    tenant: Any,
    dedupe_key: Any,
    run_after: Any,
    max_attempts: Any,
    priority: Any,
    queue: Any,
    now: datetime,
) -> Handler:
    """Return the handler of `kind`, or raise InvalidJob saying what is wrong with the first bad argument."""
    if not isinstance(kind, str) or not kind:
        raise InvalidJob("kind", "is required and must be a string")
    handler = get_handler(kind)
    if handler is None:
        raise UnknownKind("kind", f"unknown job kind {kind[:64]!r}; registered kinds: {_kinds_named()}")
    validate_payload(payload)
    if isinstance(handler, TaskHandler):
        task_arguments(payload)
    if not isinstance(tenant, str) or (tenant and not TENANT_RE.fullmatch(tenant)):
        raise InvalidJob("tenant", f"must be empty or match {TENANT_RE.pattern}")
    if tenant == RESERVED_SCOPE:
        raise InvalidJob("tenant", f"{RESERVED_SCOPE!r} is reserved for jobs without a tenant; leave it empty")
    if dedupe_key is not None and (
        not isinstance(dedupe_key, str) or not 1 <= len(dedupe_key) <= 200 or not dedupe_key.isprintable()
    ):
        raise InvalidJob("dedupeKey", "must be printable text of 1 to 200 characters")
    if run_after is not None:
        if not isinstance(run_after, datetime) or run_after.tzinfo is None:
            raise InvalidJob("runAfter", "must be an ISO-8601 date-time with a UTC offset")
        if run_after > now + MAX_RUN_AFTER:
            raise InvalidJob("runAfter", "must be within a year from now")
    if max_attempts is not None and (not _is_int(max_attempts) or not 1 <= max_attempts <= MAX_ATTEMPTS_LIMIT):
        raise InvalidJob("maxAttempts", f"must be an integer from 1 to {MAX_ATTEMPTS_LIMIT}")
    low, high = PRIORITY_RANGE
    if not _is_int(priority) or not low <= priority <= high:
        raise InvalidJob("priority", f"must be an integer from {low} to {high}")
    if not isinstance(queue, str) or not QUEUE_RE.fullmatch(queue):
        raise InvalidJob("queue", f"must match {QUEUE_RE.pattern}")
    return handler


def _kinds_named(limit: int = 200) -> str:
    """Return the registered kinds, as many as fit in `limit` characters (a project may have hundreds of tasks)."""
    kinds = registered_kinds()
    named = ", ".join(kinds)
    if len(named) <= limit:
        return named
    shown = named[:limit].rpartition(", ")[0]
    return f"{shown}, … ({len(kinds)} in all; see docs/tasks.md)"


def validate_payload(payload: Any) -> None:
    """Raise InvalidJob unless `payload` is JSON of at most 256 KiB, nested at most 100 levels deep."""
    if _too_deep(payload, MAX_PAYLOAD_DEPTH):
        raise InvalidJob("payload", f"is nested more than {MAX_PAYLOAD_DEPTH} levels deep")
    try:
        encoded = json.dumps(payload, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidJob("payload", f"is not JSON-serialisable: {exc}") from exc
    if len(encoded.encode()) > MAX_PAYLOAD_BYTES:
        raise InvalidJob("payload", f"is larger than {MAX_PAYLOAD_BYTES // 1024} KiB once encoded")
    problem = unstorable_text(payload, encoded)
    if problem:
        raise InvalidJob("payload", problem)


def unstorable_text(value: Any, encoded: str) -> str:
    """Return why PostgreSQL's jsonb would refuse `value` (JSON-encoded as `encoded`), or "" when it would not."""
    if "\\u0000" in encoded and _any_string(value, lambda text: "\x00" in text):
        # PostgreSQL's jsonb cannot store NUL characters.
        return "contains a NUL character, which cannot be stored"
    if "\\ud" in encoded and _any_string(value, _has_lone_surrogate):
        # A lone surrogate (JSON allows "\ud800") is not Unicode text: PostgreSQL refuses it.
        return "contains a lone UTF-16 surrogate, which is not valid Unicode text"
    return ""


def _any_string(payload: Any, test: Callable[[str], bool]) -> bool:
    """Return whether `test` holds for any string in `payload`, keys included."""
    stack = [payload]
    while stack:
        value = stack.pop()
        if isinstance(value, str) and test(value):
            return True
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return False


def _too_deep(payload: Any, limit: int) -> bool:
    """Return whether objects and arrays in `payload` nest more than `limit` levels (without recursing)."""
    stack = [(payload, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > limit:
                return True
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)
    return False


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
