"""Dead letters: one row per terminal failure, written idempotently (a unique origin each)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING, Any

from core.errors import error_fingerprint
from jobs.context import RunOrigin
from runs.metrics import dead_letter_count
from runs.models import DeadLetter, FunctionRun

if TYPE_CHECKING:
    from jobs.models import BackgroundJob

logger = logging.getLogger(__name__)


def dead_letter_for_job(*, job: BackgroundJob, error: str, now: datetime, origin: RunOrigin) -> DeadLetter:
    """Return the dead letter of a job that died (the queue's job-died hook), creating it once."""
    letter, created = DeadLetter.objects.get_or_create(
        job=job,
        defaults={
            "source": DeadLetter.Source.JOB,
            "kind": job.kind,
            "scope": job.scope,
            "dispatch_key": origin.dispatch_key,
            "correlation_id": origin.correlation_id,
            "run_id": origin.run_id,
            "error": error,
            "fingerprint": error_fingerprint(error),
            "payload": job.payload,
            "attempts": job.attempts,
            "created_at": now,
        },
    )
    if created:
        dead_letter_count(source=letter.source, kind=letter.kind)
    return letter


def dead_letter_for_run(*, run: FunctionRun, error: str, payload: Any, now: datetime) -> DeadLetter:
    """Return the dead letter of a function run that failed for good, creating it once."""
    letter, created = DeadLetter.objects.get_or_create(
        function_run=run,
        defaults={
            "source": DeadLetter.Source.FUNCTION_RUN,
            "kind": run.function_id,
            "scope": run.scope,
            "dispatch_key": run.dispatch_key,
            "correlation_id": run.correlation_id,
            "run_id": run.run_id,
            "error": error,
            "fingerprint": error_fingerprint(error),
            "payload": payload,
            "attempts": run.attempts,
            "created_at": now,
        },
    )
    if created:
        dead_letter_count(source=letter.source, kind=letter.kind)
    return letter


def dead_letters_unresolved() -> int:
    """Return how many dead letters wait for triage (the queue-health report and the SLO report count them)."""
    return DeadLetter.objects.filter(resolved_at__isnull=True).count()
