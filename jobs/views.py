"""`POST /api/jobs`: enqueue a background job over HTTP (docs/jobs.md)."""

from __future__ import annotations

import json
import logging
from typing import Any

from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from core.auth import BearerGate
from core.database import unavailable_as_503
from core.timefmt import iso_utc, parse_iso_utc
from jobs.exceptions import InvalidJob
from jobs.models import BackgroundJob
from jobs.retry import MAX_ATTEMPTS_LIMIT
from jobs.services import MAX_PAYLOAD_BYTES, job_enqueue

logger = logging.getLogger(__name__)

JOBS_API_GATE = BearerGate(setting="JOBS_API_TOKEN", caller="jobs API", service="the jobs API", action="jobs_api")

FIELDS = {"kind", "payload", "tenant", "dedupeKey", "runAfter", "maxAttempts", "priority"}


@csrf_exempt
@unavailable_as_503(action="jobs_api")
def enqueue(request: HttpRequest) -> JsonResponse:
    """Validate and enqueue one job: 201 created, 200 deduplicated, 400, 401, 405, 413; 503 without the database."""
    if (refusal := JOBS_API_GATE.refusal(request)) is not None:
        return refusal
    if request.method != "POST":
        response = JsonResponse({"error": f"method {request.method} not allowed; use POST"}, status=405)
        response["Allow"] = "POST"
        return response
    too_large = _refuse_large_body(request)
    if too_large is not None:
        return too_large
    # Read at most one byte past the limit: a body without a Content-Length
    # (chunked) is refused as soon as it is known to be too large.
    raw = request.read(MAX_PAYLOAD_BYTES + 1)
    if len(raw) > MAX_PAYLOAD_BYTES:
        return _too_large()
    try:
        fields = _parse(raw)
        now = timezone.now()
        result = job_enqueue(now=now, **fields)
    except InvalidJob as exc:
        return JsonResponse({"error": str(exc), "field": exc.field}, status=400)
    return JsonResponse(_describe(result.job, created=result.created), status=201 if result.created else 200)


def _refuse_large_body(request: HttpRequest) -> JsonResponse | None:
    """Refuse a body over the limit from its Content-Length, before reading it."""
    try:
        length = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return JsonResponse({"error": "Content-Length is not a number"}, status=400)
    if length > MAX_PAYLOAD_BYTES:
        return _too_large()
    return None


def _too_large() -> JsonResponse:
    return JsonResponse({"error": f"request body is larger than {MAX_PAYLOAD_BYTES // 1024} KiB"}, status=413)


def _parse(raw: bytes) -> dict[str, Any]:
    try:
        body = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidJob("body", "is not valid JSON") from exc
    if not isinstance(body, dict):
        raise InvalidJob("body", "must be a JSON object with at least `kind`")
    unknown = sorted(set(body) - FIELDS)
    if unknown:
        raise InvalidJob(_printable(unknown[0]), f"is not a known field; allowed: {', '.join(sorted(FIELDS))}")
    if "maxAttempts" in body and body["maxAttempts"] is None:  # left out, it is the kind's default; null is no number
        raise InvalidJob("maxAttempts", f"must be an integer from 1 to {MAX_ATTEMPTS_LIMIT}, or left out")
    fields: dict[str, Any] = {
        "kind": body.get("kind"),
        "payload": body.get("payload"),
        "tenant": body.get("tenant", ""),
        "dedupe_key": body.get("dedupeKey"),
        "max_attempts": body.get("maxAttempts"),
        "priority": body.get("priority", 0),
    }
    run_after = body.get("runAfter")
    if run_after is not None:
        if not isinstance(run_after, str):
            raise InvalidJob("runAfter", "must be an ISO-8601 date-time string with a UTC offset")
        try:
            fields["run_after"] = parse_iso_utc(run_after)
        except ValueError as exc:
            raise InvalidJob("runAfter", str(exc)) from exc
    return fields


def _printable(name: str, limit: int = 64) -> str:
    """A caller's field name as it may be echoed: escaped to printable ASCII, at most `limit` characters."""
    escaped = name.encode("unicode_escape").decode("ascii")
    return escaped if len(escaped) <= limit else escaped[: limit - 1] + "…"


def _describe(job: BackgroundJob, *, created: bool) -> dict[str, Any]:
    return {
        "id": job.pk,
        "kind": job.kind,
        "tenant": job.tenant,
        "status": job.status,
        "dedupeKey": job.dedupe_key,
        "runAfter": iso_utc(job.run_after),
        "maxAttempts": job.max_attempts,
        "priority": job.priority,
        "created": created,
    } | ({} if job.result_id is None else {"resultId": str(job.result_id)})
