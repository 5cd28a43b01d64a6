"""Which of the app's functions Inngest has registered: `manage.py inngest_functions` (docs/inngest.md, "Syncing").

Inngest's REST API lists an app's functions (`GET {API base URL}/v1/apps/<app id>/functions`,
authenticated by the hash of the signing key; the dev server asks for nothing):
where it answers (self-hosted Inngest, the dev server, Inngest Cloud), a function the
app serves that the list lacks was never registered — a sync that has not happened
yet, or one that failed. Where it does not answer, nobody here can know.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx
from inngest._internal.transforms import hash_signing_key

from core.errors import one_line, squash
from core.inngest import InngestConfig, client_for
from runs.functions import build_functions

TIMEOUT_SECONDS = 10.0


class RegistryUnknown(Exception):
    """Inngest could not say which functions it has: the message says why."""


@dataclass(frozen=True)
class Registered:
    url: str  # where Inngest was asked
    served: tuple[str, ...]  # the ids of the functions the app serves (failure handlers included)
    missing: tuple[str, ...]  # those Inngest does not list


def functions_registered(*, config: InngestConfig) -> Registered:
    """Ask Inngest which of the functions the app serves it has registered; raise RegistryUnknown if it cannot say."""
    client = client_for(config)
    served = tuple(
        fn_id for function in build_functions(client) for fn_id in (function.id, function.on_failure_fn_id) if fn_id
    )
    url = f"{client.api_origin.rstrip('/')}/v1/apps/{config.app_id}/functions"
    headers = {"X-Inngest-Env": client.env} if client.env else {}  # INNGEST_ENV, or the platform's branch
    if config.signing_key and not config.dev_mode:
        headers["Authorization"] = f"Bearer {hash_signing_key(config.signing_key)}"
    try:
        response = httpx.get(url, headers=headers, timeout=TIMEOUT_SECONDS)
        listed = {str(function["id"]) for function in response.json()} if response.status_code == 200 else None
    except httpx.HTTPError as exc:
        raise RegistryUnknown(f"Inngest's API at {url} cannot be reached: {one_line(exc)}") from exc
    except (ValueError, TypeError, KeyError) as exc:
        raise RegistryUnknown(f"Inngest's API at {url} answered something other than a list of functions") from exc
    if listed is None:
        raise RegistryUnknown(f"Inngest's API at {url} answered {response.status_code}: {squash(response.text, 200)}")
    return Registered(url=url, served=served, missing=tuple(fn_id for fn_id in served if fn_id not in listed))
