"""Operations endpoints: `GET /api/health` (no auth), `GET /api/status` (bearer CRON_SECRET), `GET /metrics`
(bearer METRICS_TOKEN). Each answers JSON when the database is down: 503, saying so."""

from __future__ import annotations

import logging

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from prometheus_client.exposition import choose_encoder

from core.auth import BearerGate
from core.database import unavailable_as_503
from orchestrator.health import health_probe
from orchestrator.metrics import metrics_registry
from orchestrator.slo import parse_period, slo_report_build

logger = logging.getLogger(__name__)

STATUS_GATE = BearerGate(setting="CRON_SECRET", caller="status", service="the status endpoint", action="status_auth")
METRICS_GATE = BearerGate(
    setting="METRICS_TOKEN", caller="metrics", service="the metrics endpoint", action="metrics_auth"
)

DEFAULT_PERIOD = "24h"


# The three read-only endpoints take no cookie and change nothing: a POST (or any other method) is answered
# with a JSON 405 by the view, not with the CSRF middleware's HTML 403.
@csrf_exempt
@never_cache
def health(request: HttpRequest) -> JsonResponse:
    """Answer 200 when the database and the cache are reachable, else 503; the body says which."""
    if (refusal := _refusal(request)) is not None:
        return refusal
    body = health_probe()
    return JsonResponse(body, status=200 if body["status"] == "ok" else 503)


@csrf_exempt
@never_cache
@unavailable_as_503(action="status")
def status(request: HttpRequest) -> JsonResponse:
    """Answer the SLO report for `?since=24h` (default) as JSON; `pass` says whether every gate holds."""
    if (refusal := _refusal(request, gate=STATUS_GATE)) is not None:
        return refusal
    for name, values in request.GET.lists():
        # Refused as the cron view refuses them: a typo must not quietly report on the default period.
        if name != "since":
            error = f"param {name!r} is not accepted by /api/status (accepted: since)"
            return JsonResponse({"error": error, "param": name}, status=400)
        if len(values) > 1:
            return JsonResponse({"error": "param 'since' is given more than once", "param": "since"}, status=400)
    since_text = request.GET.get("since", DEFAULT_PERIOD)
    try:
        period = parse_period(since_text)
    except ValueError as exc:
        return JsonResponse({"error": f"since: {exc}", "param": "since"}, status=400)
    now = timezone.now()
    report = slo_report_build(since=now - period, now=now)
    return JsonResponse(report.as_json() | {"period": since_text.strip()})


@csrf_exempt
@never_cache
@unavailable_as_503(action="metrics")
def metrics(request: HttpRequest) -> HttpResponse:
    """Answer the Prometheus metrics, read from the ledgers now (docs/operations.md, "Metrics")."""
    if (refusal := _refusal(request, gate=METRICS_GATE)) is not None:
        return refusal
    # The scraper's Accept header picks the format: Prometheus text (0.0.4 by default) or OpenMetrics.
    encode, content_type = choose_encoder(request.headers.get("Accept", ""))
    return HttpResponse(encode(metrics_registry(now=timezone.now())), content_type=content_type)


def _refusal(request: HttpRequest, *, gate: BearerGate | None = None) -> JsonResponse | None:
    """Return the answer refusing `request` (its bearer check first, then its method), or None."""
    if gate is not None and (refusal := gate.refusal(request)) is not None:
        return refusal
    if request.method in ("GET", "HEAD"):
        return None
    response = JsonResponse({"error": f"method {request.method} not allowed; use GET"}, status=405)
    response["Allow"] = "GET, HEAD"
    return response
