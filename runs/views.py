"""`/api/inngest`: the Inngest SDK's Django integration, serving the functions (SPEC §4).

The serve handler is built lazily from the current settings (and rebuilt when
they change), so the URLconf never needs Inngest to be configured: without a
signing key outside dev mode the endpoint answers 503 and says what to set.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import inngest.django
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from orchestrator.inngest import InngestConfig, client_for, current_config
from runs.functions import build_functions

View = Callable[[HttpRequest], HttpResponse]


@csrf_exempt
def serve(request: HttpRequest) -> HttpResponse:
    """Hand the request to the SDK: Inngest's calls (signed in cloud mode), sync and inspection."""
    config = current_config()
    if not config.servable:
        return JsonResponse(
            {"error": "Inngest is not configured: set INNGEST_SIGNING_KEY (cloud) or INNGEST_DEV=1 (dev server)"},
            status=503,
        )
    return _handler(config)(request)


@functools.lru_cache(maxsize=8)
def _handler(config: InngestConfig) -> View:
    client = client_for(config)
    pattern = inngest.django.serve(client, build_functions(client))
    view: View = pattern.callback
    return view
