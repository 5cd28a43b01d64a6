"""Domain errors of the dispatcher."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dispatch.models import DispatchWindow


class RegistryError(Exception):
    """The cron-job registry in settings.CRON_JOBS is invalid.

    The message says every problem; `unimportable` lists those that are a job's callable failing
    to import (dispatch.E002), `other` the rest (dispatch.E001).
    """

    def __init__(self, message: str, *, unimportable: tuple[str, ...] = (), other: str | None = None) -> None:
        super().__init__(message)
        self.unimportable = unimportable
        self.other = message if other is None else other


class CallableImportError(RegistryError):
    """A cron job's callable cannot be imported: its module is missing, lacks it, or raises when imported."""


class CronConfigError(Exception):
    """The registry cannot be written as the cron service's configuration (`manage.py cron_config`)."""


class InvalidParam(Exception):
    """A cron call carried a query parameter the job does not accept."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"param {name!r} {reason}")
        self.name = name
        self.reason = reason


class ClaimLost(Exception):
    """A later tick re-claimed the window (this tick's claim looked stale): this tick may no longer write it."""

    def __init__(self, *, claim: int, window: DispatchWindow) -> None:
        super().__init__(f"window {window.dispatch_key} was re-claimed (claim {claim} → {window.claim})")
        self.claim = claim
        self.window = window


class NotPublished(Exception):
    """A publish-only tick (the reconciler's) found its job running inline now: it claimed nothing, ran nothing."""

    def __init__(self, *, mode: str, reason: str) -> None:
        super().__init__(f"the job runs inline now (mode {mode}): {reason}")
        self.mode = mode
        self.reason = reason
