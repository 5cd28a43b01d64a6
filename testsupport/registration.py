"""How Inngest syncs an app out of band, and what its `/fn/register` answers (for the Inngest doubles).

`inngest start --sdk-url` and the dev server sync an app out of band: they PUT
`{"url": ...}` to it (signed when the server has a signing key; no sync-kind header),
and the SDK then POSTs its functions to `{API base URL}/fn/register`, authenticated by
`Authorization: Bearer <hash of the signing key>`. One invalid function refuses the
whole registration. Each rule follows a file of the open-source server
(github.com/inngest/inngest), named beside it.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import re
import uuid
import zoneinfo
from dataclasses import dataclass
from typing import Any

import httpx
import jcs

from testsupport.protocol import signed_headers

REGISTERED = "At least one function is invalid"  # pkg/devserver/api.go, register
_PREFIX = re.compile(r"^signkey-\w+-")  # pkg/authn/signing_key_strategy.go, keyRegexp


@dataclass
class Answer:
    """What `/fn/register` answered, and the functions it registered (None when it refused)."""

    status: int
    content_type: str
    body: bytes
    app: str = ""
    functions: list[dict[str, Any]] | None = None


def register(*, headers: dict[str, str], body: bytes, signing_key: str | None, server_kind: str) -> Answer:
    """Answer a registration as `inngest start` (with `signing_key`) or the dev server (without) does."""
    if signing_key is not None and not authenticated(headers, signing_key):
        # pkg/authn/signing_key_strategy.go, SigningKeyMiddleware: http.Error, plain text.
        return Answer(401, "text/plain; charset=utf-8", b"Authentication failed\n")
    expected = headers.get("x-inngest-expected-server-kind", "")
    if expected and expected != server_kind:  # pkg/devserver/api.go, Register
        return _error(400, f"Expected server kind {server_kind}, got {expected}")
    # pkg/sdk/sdk.go, RegisterRequest: Go matches JSON keys without regard to case ("appname" is appName).
    request = {key.lower(): value for key, value in json.loads(body).items()}
    app = request.get("appname") or ""
    if not app:
        return _error(400, "App ID required")
    functions = request.get("functions") or []
    if any(function_problem(config) for config in functions):
        return _error(400, REGISTERED)
    reply = {"ok": True, "modified": True, "sync_id": str(uuid.uuid4()), "app_id": str(uuid.uuid4())}
    return Answer(200, "application/json", json.dumps(reply).encode(), app, functions)


def _error(status: int, message: str) -> Answer:
    """pkg/publicerr/publicerr.go, WriteHTTP: the public message is `error`; the cause stays in the server."""
    body = {"error": message, "data": None, "status": status}
    return Answer(status, "application/json", json.dumps(body).encode() + b"\n")


def authenticated(headers: dict[str, str], signing_key: str) -> bool:
    """pkg/authn/signing_key_strategy.go, HandleSigningKey: the bearer token is the key or its hash, minus prefix."""
    token = _PREFIX.sub("", headers.get("authorization", "").removeprefix("Bearer ").strip())
    trusted = _PREFIX.sub("", signing_key)
    return bool(token) and (hmac.compare_digest(token, trusted) or hmac.compare_digest(token, hashed_key(trusted)))


def hashed_key(signing_key: str) -> str:
    """Return the SHA-256 of the key's bytes (its hex decoded), as Inngest's API is authenticated; "" if not hex."""
    try:
        return hashlib.sha256(bytes.fromhex(_PREFIX.sub("", signing_key))).hexdigest()
    except ValueError:
        return ""


def function_problem(config: dict[str, Any]) -> str:
    """Return why Inngest refuses a function config, or "" (pkg/inngest/function.go and trigger.go, Validate)."""
    triggers = config.get("triggers") or []
    if not triggers:
        return "A function must have at least one trigger"
    for trigger in triggers:
        if bool(trigger.get("event")) == bool(trigger.get("cron")):
            return "A trigger must supply an event name or a cron schedule, not both"
        if trigger.get("cron") and (problem := cron_problem(trigger["cron"])):
            return problem
    if not (config.get("steps") or {}).get("step", {}).get("runtime", {}).get("url"):
        return f"No SDK URL provided for function '{config.get('name')}'"
    return ""


# --- Cron schedules -------------------------------------------------------------
# pkg/inngest/trigger.go, CronTrigger.Validate: robfig/cron/v3's parser with the five fields
# Minute | Hour | Dom | Month | Dow and no descriptors (vendor/github.com/robfig/cron/v3/parser.go).

MAX_CRON_LENGTH = 255  # pkg/inngest/trigger.go
_MONTHS = dict(
    zip(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), range(1, 13), strict=True)
)
_DAYS = dict(zip(("sun", "mon", "tue", "wed", "thu", "fri", "sat"), range(7), strict=True))
# spec.go: the bounds of each field, and its names.
_FIELDS: tuple[tuple[int, int, dict[str, int]], ...] = (
    (0, 59, {}),
    (0, 23, {}),
    (1, 31, {}),
    (1, 12, _MONTHS),
    (0, 6, _DAYS),
)


def cron_problem(spec: str) -> str:
    """Return why robfig/cron refuses `spec` as Inngest parses it, or ""."""
    if len(spec) > MAX_CRON_LENGTH:
        return f"cron is too long. maximum length is {MAX_CRON_LENGTH} characters"
    if not spec:
        return "empty spec string"
    if spec.startswith(("TZ=", "CRON_TZ=")):
        zone, _, spec = spec.partition(" ")
        if not _zone_exists(zone.partition("=")[2]):
            return f"provided bad location {zone.partition('=')[2]}"
        spec = spec.strip()
    if spec.startswith("@"):
        return f"parser does not accept descriptors: {spec}"
    fields = spec.split()
    if len(fields) != len(_FIELDS):
        return f"expected exactly {len(_FIELDS)} fields, found {len(fields)}: {fields}"
    for field, (low, high, names) in zip(fields, _FIELDS, strict=True):
        for expr in filter(None, field.split(",")):
            if problem := _range_problem(expr, low, high, names):
                return problem
    return ""


def _range_problem(expr: str, low: int, high: int, names: dict[str, int]) -> str:
    """parser.go, getRange: `*` or `?` (all), N, or N-M, each with an optional /step."""
    range_and_step = expr.split("/")
    low_and_high = range_and_step[0].split("-")
    try:
        if low_and_high[0] in ("*", "?"):
            start, end = low, high
        elif len(low_and_high) > 2:
            return f"too many hyphens: {expr}"
        else:
            start = _number(low_and_high[0], names)
            end = _number(low_and_high[-1], names)
        if len(range_and_step) > 2:
            return f"too many slashes: {expr}"
        step = _number(range_and_step[1], {}) if len(range_and_step) == 2 else 1
    except ValueError as exc:
        return str(exc)
    if len(range_and_step) == 2 and len(low_and_high) == 1:
        end = high  # "N/step" means "N-max/step"
    if start < low or end > high or start > end:
        return f"range out of bounds ({low}-{high}): {expr}"
    return "" if step > 0 else f"step of range should be a positive number: {expr}"


def _number(text: str, names: dict[str, int]) -> int:
    """parser.go, parseIntOrName and mustParseInt (Go's Atoi: an optional sign, then digits)."""
    if text.lower() in names:
        return names[text.lower()]
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ValueError(f"failed to parse int from {text}")
    if int(text) < 0:
        raise ValueError(f"negative number ({int(text)}) not allowed: {text}")
    return int(text)


def _zone_exists(name: str) -> bool:
    """Go's time.LoadLocation: "UTC", "Local" (and "", UTC), or a zone of the IANA database."""
    return name in ("UTC", "Local", "") or name in _iana_zones()


@functools.cache
def _iana_zones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


# --- The sync: what the server sends the app, and how it reads the answer -------------------------


@dataclass
class Sync:
    """How an out-of-band sync ended, as the server sees it: "" when the app took it, else the error code."""

    error: str
    status: int
    from_sdk: bool
    body: Any


def ping(http: httpx.Client, url: str, *, signing_key: str | None, server_kind: str, host: str | None = None) -> Sync:
    """PUT `{"url": url}` to the app, as pkg/deploy/deploy.go, Ping, does; read the answer as GetDeployError does.

    `host` is the name the server reached the app by, when it is not the URL's (a container's host.docker.internal).
    """
    body = jcs.canonicalize({"url": url})
    headers = {"Content-Type": "application/json", "X-Inngest-Server-Kind": server_kind}
    if host is not None:
        headers["Host"] = host
    if signing_key is not None:
        headers["X-Inngest-Signature"] = signed_headers(body, signing_key=signing_key)["X-Inngest-Signature"]
    try:
        response = http.put(url, content=body, headers=headers)
    except httpx.TransportError:
        return Sync("unreachable", 0, False, None)
    try:
        answer = response.json()
    except ValueError:
        answer = response.text
    return Sync(
        _deploy_error(response.status_code, answer), response.status_code, "x-inngest-sdk" in response.headers, answer
    )


def _deploy_error(status: int, answer: Any) -> str:
    """pkg/deploy/deploy.go, GetDeployError: a 400's `message` is shown as it is; other statuses by a code."""
    if status == 400:
        return str(answer.get("message", "")) if isinstance(answer, dict) else "invalid JSON"
    return {401: "unauthorized", 403: "forbidden", 404: "url_not_found", 500: "internal_server_error"}.get(status, "")
