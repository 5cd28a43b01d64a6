"""`/api/inngest`: the Inngest SDK's Django integration, serving the functions (docs/inngest.md).

The serve handler is built lazily from the current settings (and rebuilt when
they change), so the URLconf never needs Inngest to be configured: without a
signing key outside dev mode the endpoint answers 503 and says what to set.
Dev mode verifies no signature, so it is served only while DEBUG is on (local
use); with DEBUG off it answers 503 too (and `check --deploy` fails: E006). In cloud
mode an unsigned sync PUT is refused unless INNGEST_ENABLE_UNAUTHED_SYNC says
otherwise, and a sync whose registration Inngest refused is answered as a failure
(runs.sync).
"""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Callable
from urllib.parse import parse_qs

import inngest.django
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from core.inngest import InngestConfig, client_for, current_config, registrations_seen
from runs.functions import build_functions
from runs.steps import execution_request
from runs.sync import sync_answer

logger = logging.getLogger(__name__)

View = Callable[[HttpRequest], HttpResponse]

DEV_MODE_REFUSED = (
    "Inngest dev mode (INNGEST_DEV) verifies no signature and is refused while DEBUG is false: "
    "unset INNGEST_DEV and set INNGEST_SIGNING_KEY, or set DEBUG=true for local use with the dev server "
    "(see docs/security.md)"
)


@csrf_exempt
def serve(request: HttpRequest) -> HttpResponse:
    """Hand the request to the SDK: Inngest's calls (signed in cloud mode), sync and inspection.

    Dev mode (unsigned) is served only with DEBUG on.
    """
    config = current_config()
    if not config.servable:
        return JsonResponse(
            {"error": "Inngest is not configured: set INNGEST_SIGNING_KEY (cloud) or INNGEST_DEV=1 (dev server)"},
            status=503,
        )
    if config.dev_mode and not settings.DEBUG:
        # Dev mode verifies no signature: anyone who can reach the URL could run the functions.
        logger.error("inngest call refused: INNGEST_DEV is set and DEBUG is false", extra={"action": "inngest_auth"})
        return JsonResponse({"error": DEV_MODE_REFUSED}, status=503)
    if not config.dev_mode and _signed_too_long_ago(request, now=time.time()):
        # The SDK checks the signature's HMAC, not its age: refuse a replayed call here.
        logger.warning("inngest call refused: signature timestamp too old", extra={"action": "inngest_auth"})
        return JsonResponse({"message": "Unauthorized"}, status=401)
    handler = _handler(config)
    if request.method == "PUT":
        with registrations_seen() as registrations:
            return sync_answer(handler(request), registrations)
    with execution_request(max_attempts=_max_attempts(request)):
        response = handler(request)
    if response.status_code >= 500 and request.method == "POST":
        _function_error_logged(request, response)
    return response


def _function_error_logged(request: HttpRequest, response: HttpResponse) -> None:
    """Log a function's failed attempt, which the SDK answers 5xx so that Inngest retries it, as a warning.

    Django would log every 5xx as "ERROR Internal Server Error": a retry is expected, and
    a run's terminal failure is logged (with its dead letter) by the run ledger.
    """
    logger.warning(
        "inngest function attempt failed: answered %s for Inngest to retry",
        response.status_code,
        extra={
            "action": "inngest_call",
            "status": response.status_code,
            "function": request.GET.get("fnId", ""),
            "step": request.GET.get("stepId", ""),
            "retry": response.headers.get("X-Inngest-No-Retry") != "true",
        },
    )
    # What django.utils.log.log_response checks, so that the answer is not logged twice.
    setattr(response, "_has_been_logged", True)  # noqa: B010


def _max_attempts(request: HttpRequest) -> int | None:
    """Return the `ctx.max_attempts` of an execution request, or None (not one, or it does not say)."""
    if request.method != "POST":
        return None
    try:
        value = json.loads(request.body)["ctx"]["max_attempts"]
    except (ValueError, KeyError, TypeError):
        return None  # the SDK answers a request it cannot read
    return value if type(value) is int and value >= 1 else None


def _signed_too_long_ago(request: HttpRequest, *, now: float) -> bool:
    """Return whether the request's signature names a time outside INNGEST_SIGNATURE_MAX_AGE_SECONDS.

    A request without a readable timestamp is left to the SDK, which refuses it.
    """
    fields = parse_qs(request.headers.get("X-Inngest-Signature", ""))
    try:
        signed_at = int(fields["t"][0])
    except (KeyError, ValueError):
        return False
    max_age: int = settings.INNGEST_SIGNATURE_MAX_AGE_SECONDS
    return abs(now - signed_at) > max_age


@functools.lru_cache(maxsize=8)
def _handler(config: InngestConfig) -> View:
    client = client_for(config)
    pattern = inngest.django.serve(
        client,
        build_functions(client),
        # Otherwise anyone who can reach the URL could make the app register itself, at the URL of their Host.
        enable_unauthed_sync=config.enable_unauthed_sync,
        serve_origin=config.serve_origin or None,
    )
    view: View = pattern.callback
    return view
