"""Configuration checks of the app's sync with Inngest: a signing key Inngest cannot use, unsigned syncs allowed.

Neither stops the cron view from dispatching (publishing needs only the event key);
both concern `PUT /api/inngest`, which registers the app's functions with Inngest
(docs/inngest.md, "Syncing").
"""

from __future__ import annotations

from typing import Any

from django.core.checks import CheckMessage, Error, Tags, Warning, register

from core.inngest import InngestConfig, current_config
from orchestrator.checks import TAG


def signing_key_form_messages(config: InngestConfig) -> list[CheckMessage]:
    if config.signing_key_usable:
        return []
    where = (
        "self-hosted Inngest takes no other (inngest start --signing-key refuses it)"
        if config.self_hosted
        else "Inngest issues keys as signkey-<env>-<hex>"
    )
    return [
        Error(
            "INNGEST_SIGNING_KEY is not a key Inngest can use: after its optional signkey-<env>- prefix it must be "
            f"hexadecimal, of even length; {where}. Every sync of the app with Inngest fails.",
            hint="Set INNGEST_SIGNING_KEY to Inngest's signing key; for self-hosted Inngest, generate one with "
            "'openssl rand -hex 32' and start the server with that same key (docs/inngest.md, 'Self-hosted Inngest').",
            id="orchestrator.E013",
        )
    ]


def unauthed_sync_messages(config: InngestConfig) -> list[CheckMessage]:
    if not config.enable_unauthed_sync or config.dev_mode:
        return []
    return [
        Warning(
            "INNGEST_ENABLE_UNAUTHED_SYNC is true: anyone who can reach /api/inngest can make the app register "
            "itself with Inngest again, at the URL their request's Host names.",
            hint="Unset it: Inngest's own syncs are signed (docs/security.md, 'Signatures').",
            id="orchestrator.W005",
        )
    ]


@register(TAG)
def check_signing_key_form(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return signing_key_form_messages(current_config())


@register(TAG, Tags.security, deploy=True)
def check_unauthed_sync(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return unauthed_sync_messages(current_config())
