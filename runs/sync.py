"""The app's sync with Inngest, as `PUT /api/inngest` answers it (docs/inngest.md, "Syncing").

Inngest Cloud syncs in band: its signed PUT is answered with the function configs,
and the SDK's answer stands. Self-hosted Inngest and the dev server sync out of band:
after their PUT the SDK registers the functions at `{API base URL}/fn/register`. The
SDK answers that PUT 200 whatever Inngest answered the registration (a refusal too),
and one answered in plain text (`inngest start` refuses a wrong key so) only as "not
valid JSON". So the registration's own answer is read (core.inngest.registrations_seen),
and a refused or failed registration is logged as an error and answered 400 with a
message saying why: the status whose message Inngest's sync shows as it is
(pkg/deploy/deploy.go, GetDeployError, in github.com/inngest/inngest).
"""

from __future__ import annotations

import json
import logging

import httpx
from django.http import HttpResponse, JsonResponse

from core.errors import squash

logger = logging.getLogger(__name__)

SYNC_KIND = "X-Inngest-Sync-Kind"
HINTS = {
    400: "one function Inngest cannot accept refuses the whole app: run 'python manage.py check' "
    "(RECONCILE_CRON must be a schedule Inngest reads)",
    401: "INNGEST_SIGNING_KEY must be the key Inngest was started with (inngest start --signing-key)",
    403: "INNGEST_SIGNING_KEY must be the key Inngest was started with (inngest start --signing-key)",
    404: "INNGEST_API_BASE_URL (or INNGEST_BASE_URL) must name Inngest's API",
}
SEE = "see docs/inngest.md, 'Syncing'"


def sync_answer(response: HttpResponse, registrations: list[httpx.Response]) -> HttpResponse:
    """Return the answer to a sync PUT: the SDK's, or a 400 saying why the registration failed."""
    if response.get(SYNC_KIND) == "in_band":
        return response
    if registrations:
        registration = registrations[-1]
        if registration.status_code < 300:
            logger.info(
                "app registered with Inngest",
                extra={"action": "inngest_sync", "registerUrl": str(registration.url)},
            )
            return response
        status = registration.status_code
        reason = f"Inngest refused the registration at {registration.url}: {status} {_cause(registration.content)}"
        reason += f" ({HINTS[status]})" if status in HINTS else ""
    elif response.status_code >= 500:  # the SDK could not register: Inngest unreachable, for one
        status = None
        reason = f"the app could not register with Inngest: {_cause(response.content)}"
    else:  # the SDK refused the PUT itself (unsigned, from another kind of server): its own answer and log line
        return response
    logger.error(
        f"sync failed: {reason}",
        extra={"action": "inngest_sync", "status": status, "error": reason},
    )
    failed = JsonResponse({"message": f"{reason}; {SEE}"}, status=400)
    for name, value in response.items():
        if name.lower().startswith("x-inngest-") and name.lower() != "x-inngest-signature":
            failed[name] = value
    return failed


def _cause(body: bytes) -> str:
    """Return what an answer says went wrong: its JSON `error` or `message`, else its text; one line."""
    try:
        parsed = json.loads(body)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        text = str(parsed.get("error") or parsed.get("message") or parsed)
    else:
        text = body.decode("utf-8", "replace")
    return squash(text, 300) or "(no message)"
