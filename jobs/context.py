"""What a job handler receives, and who asked for the drain that runs it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobs.models import BackgroundJob


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
    job: BackgroundJob  # the row as claimed: a task's TaskContext is built from it

    def heartbeat(self) -> bool:
        """Extend this job's lease; return False when the lease was lost (stop working then)."""
        return self._heartbeat()


@dataclass(frozen=True)
class RunOrigin:
    """Who asked for this drain: carried into logs and dead letters."""

    correlation_id: str = ""
    dispatch_key: str = ""
    run_id: str = ""

    def log_fields(self) -> dict[str, str]:
        """Return the non-empty fields under their log names (correlationId, dispatchKey, runId)."""
        fields = {"correlationId": self.correlation_id, "dispatchKey": self.dispatch_key, "runId": self.run_id}
        return {key: value for key, value in fields.items() if value}
