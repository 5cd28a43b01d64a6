"""Bearer-token checks shared by the cron, status, job and metrics endpoints."""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest, JsonResponse

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BearerGate:
    """The bearer check one endpoint runs before anything else.

    `setting` names the secret (read from settings on each call). Without it the
    endpoint is closed (503) unless DEBUG is on, where calls are let through with a
    logged warning (local use only). With it, the request must carry
    `Authorization: Bearer <secret>` (else 401, the same answer whatever was wrong).
    """

    setting: str  # e.g. "CRON_SECRET"
    caller: str  # names the calls in the log: "cron call refused: ..."
    service: str  # names the endpoint in the 503: "cron dispatch is disabled until ..."
    action: str  # the log lines' action

    def refusal(self, request: HttpRequest) -> JsonResponse | None:
        """Return the answer that refuses `request`, or None when it may go on."""
        secret: str = getattr(settings, self.setting)
        if not secret:
            if not settings.DEBUG:
                logger.error(f"{self.caller} call refused: {self.setting} is not set", extra={"action": self.action})
                return JsonResponse({"error": f"{self.service} is disabled until {self.setting} is set"}, status=503)
            logger.warning(
                f"{self.caller} call accepted without {self.setting} (DEBUG only)", extra={"action": self.action}
            )
            return None
        if not bearer_matches(request, secret):
            return JsonResponse({"error": "unauthorized"}, status=401)
        return None


def bearer_matches(request: HttpRequest, secret: str) -> bool:
    """Return whether the request carries `Authorization: Bearer <secret>`.

    The comparison is constant-time, and an empty secret never matches, so
    `Authorization: Bearer ` cannot pass for an unset token.
    """
    if not secret:
        return False
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    # Compare digests, so neither the content nor the length of the secret leaks.
    given = hashlib.sha256(token.strip().encode()).digest()
    expected = hashlib.sha256(secret.encode()).digest()
    return hmac.compare_digest(given, expected)
