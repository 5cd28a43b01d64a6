"""`GET|POST /api/cron/<job>`: the authenticated dispatcher endpoint (docs/cron.md).

The site's URLconf passes in `deploy_errors`: what makes a deployment unfit to
dispatch is the site's to judge (its deploy checks), above this layer.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence

from django.conf import settings
from django.core.checks import CheckMessage
from django.db import DatabaseError
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from core.auth import BearerGate
from dispatch import keys
from dispatch.exceptions import InvalidParam
from dispatch.models import DispatchWindow
from dispatch.registry import get_cron_job
from dispatch.services import dispatch_tick

logger = logging.getLogger(__name__)

CRON_GATE = BearerGate(setting="CRON_SECRET", caller="cron", service="cron dispatch", action="cron_auth")


@csrf_exempt
def cron(request: HttpRequest, job: str, *, deploy_errors: Callable[[], Sequence[CheckMessage]]) -> JsonResponse:
    """Authenticate, validate, then run one tick of `job` and answer with its JSON.

    While `deploy_errors()` returns any error (and DEBUG is off) nothing is dispatched.
    """
    started = time.perf_counter()
    if (refusal := CRON_GATE.refusal(request)) is not None:
        return refusal
    if not settings.DEBUG and (errors := deploy_errors()):
        return _refuse_misconfigured([str(error.id) for error in errors])
    if request.method not in ("GET", "POST"):
        response = JsonResponse({"error": f"method {request.method} not allowed; use GET or POST"}, status=405)
        response["Allow"] = "GET, POST"
        return response
    cron_job = get_cron_job(job)
    if cron_job is None:
        return JsonResponse({"error": f"unknown cron job {job!r}"}, status=404)
    try:
        repeated = [name for name, values in request.GET.lists() if len(values) > 1]
        if repeated:
            raise InvalidParam(repeated[0], "is given more than once")
        params = cron_job.parse_params(request.GET.dict())
    except InvalidParam as exc:
        return JsonResponse({"error": str(exc), "param": exc.name}, status=400)
    correlation_id = keys.correlation_id(request.headers.get("X-Correlation-Id"))
    try:
        result = dispatch_tick(
            job=cron_job,
            now=timezone.now(),
            source=DispatchWindow.Source.CRON,
            correlation_id=correlation_id,
            params=params,
            started=started,
        )
    except DatabaseError as exc:
        # Without the database no window can be claimed: fail fast, say so, run nothing.
        logger.error(
            "cron call failed: database unavailable",
            extra={"action": "dispatch", "job": job, "correlationId": correlation_id, "error": type(exc).__name__},
        )
        body = {"error": f"database unavailable ({type(exc).__name__})", "job": job, "correlationId": correlation_id}
        return JsonResponse(body, status=503)
    return JsonResponse(result.body, status=result.status_code)


def _refuse_misconfigured(check_ids: list[str]) -> JsonResponse:
    """Answer 503 while a deploy check fails: a misconfigured deployment must not dispatch."""
    logger.error(
        "cron call refused: the deployment's configuration has errors",
        extra={"action": "cron_refused", "checks": check_ids},
    )
    error = (
        f"cron dispatch is refused until the configuration errors ({', '.join(check_ids)}) are fixed: "
        "run 'python manage.py check --deploy' and set what it says"
    )
    return JsonResponse({"error": error, "checks": check_ids}, status=503)
