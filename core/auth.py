"""Bearer-token checks shared by the cron, status and job endpoints."""

from __future__ import annotations

import hashlib
import hmac

from django.http import HttpRequest


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
