"""Domain errors of the dispatcher."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dispatch.models import DispatchWindow


class RegistryError(Exception):
    """The cron-job registry in settings.CRON_JOBS is invalid."""


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
