"""Checks of the sync with Inngest: a signing key Inngest cannot use (E013), unsigned syncs allowed (W005)."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.checks import run_checks


def messages(*, deploy: bool = False) -> dict[str, str]:
    return {
        str(m.id): m.msg
        for m in run_checks(include_deployment_checks=deploy)
        if str(m.id) in ("orchestrator.E013", "orchestrator.W005")
    }


@pytest.fixture(autouse=True)
def cloud(settings: Any) -> None:
    settings.INNGEST_DEV = ""
    settings.INNGEST_BASE_URL = settings.INNGEST_API_BASE_URL = ""
    settings.INNGEST_ENABLE_UNAUTHED_SYNC = False


@pytest.mark.parametrize(
    ("key", "base_url", "where"),
    [
        ("signkey-prod-not-hex", "", "Inngest issues keys as signkey-<env>-<hex>"),
        ("abc", "http://inngest.internal:8288", "self-hosted Inngest takes no other"),  # odd length
        ("a-passphrase-of-my-own", "http://inngest.internal:8288", "self-hosted Inngest takes no other"),
    ],
)
def test_check_signing_key__a_key_inngest_cannot_use_is_an_error(
    settings: Any, key: str, base_url: str, where: str
) -> None:
    settings.INNGEST_SIGNING_KEY, settings.INNGEST_BASE_URL = key, base_url

    message = messages()["orchestrator.E013"]

    assert message.startswith("INNGEST_SIGNING_KEY is not a key Inngest can use")
    assert where in message
    assert key not in message  # a secret is never shown


@pytest.mark.parametrize(
    ("key", "dev"),
    [("signkey-prod-0a1b", ""), ("5e" * 32, ""), ("", ""), ("anything", "1")],  # dev mode uses no key
)
def test_check_signing_key__a_usable_key_passes(settings: Any, key: str, dev: str) -> None:
    settings.INNGEST_SIGNING_KEY, settings.INNGEST_DEV, settings.INNGEST_BASE_URL = key, dev, "http://inngest:8288"

    assert messages() == {}


def test_check_unauthed_sync__allowing_unsigned_syncs_is_warned_at_deploy(settings: Any) -> None:
    settings.INNGEST_SIGNING_KEY = "signkey-prod-0a1b"
    settings.INNGEST_ENABLE_UNAUTHED_SYNC = True

    assert messages() == {}
    assert messages(deploy=True)["orchestrator.W005"].startswith("INNGEST_ENABLE_UNAUTHED_SYNC is true")
