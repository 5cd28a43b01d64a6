"""Domain errors of the dispatcher."""

from __future__ import annotations


class RegistryError(Exception):
    """The cron-job registry in settings.CRON_JOBS is invalid."""


class InvalidParam(Exception):
    """A cron call carried a query parameter the job does not accept."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"param {name!r} {reason}")
        self.name = name
        self.reason = reason
