"""What a job handler receives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class JobContext:
    """The job being run, and a way to extend its lease while a long handler works."""

    job_id: int
    kind: str
    tenant: str
    payload: Any
    attempt: int
    max_attempts: int
    started_at: datetime
    _heartbeat: Callable[[], bool]

    def heartbeat(self) -> bool:
        """Extend this job's lease; return False when the lease was lost (stop working then)."""
        return self._heartbeat()
