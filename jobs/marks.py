"""A group's success marks: every job's success written by one UPDATE, fenced on each job's claim (jobs.group)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection

from jobs.models import BackgroundJob

# Each job's row matches only through its own claim (attempt number and worker name), as
# every update after the claim. The group's records travel as one JSON document: one
# parameter to send, not five arrays.
_TABLE = BackgroundJob._meta.db_table
_SUCCEED_MANY_SQL = (
    f"UPDATE {_TABLE} AS job SET status = %s, finished_at = done.finished_at, "  # noqa: S608 (constants only)
    "lease_expires_at = NULL, last_error = '', return_value = done.return_value "
    "FROM jsonb_to_recordset(%s::jsonb) "
    "AS done(id bigint, attempts integer, locked_by text, finished_at timestamptz, return_value jsonb) "
    "WHERE job.id = done.id AND job.status = %s AND job.attempts = done.attempts AND job.locked_by = done.locked_by"
)
# One job's mark (a group of one, and SQLite, which has no arrays).
_SUCCEED_SQL = (
    f"UPDATE {_TABLE} SET status = %s, finished_at = %s, lease_expires_at = NULL, "  # noqa: S608
    "last_error = '', return_value = %s WHERE id = %s AND status = %s AND attempts = %s AND locked_by = %s"
)
_RETURN_VALUE = BackgroundJob._meta.get_field("return_value")
RUNNING, SUCCEEDED = BackgroundJob.Status.RUNNING, BackgroundJob.Status.SUCCEEDED


@dataclass(frozen=True)
class Success:
    """A job whose handler succeeded, waiting for its mark."""

    job: BackgroundJob
    finished_at: datetime
    return_value: Any
    ran_seconds: float  # from its handler's call to its return (the run time metric: jobs.metrics)


def mark_succeeded(successes: list[Success]) -> int:
    """Mark `successes` succeeded through their claims; return how many matched."""
    if not successes:
        return 0
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql" and len(successes) > 1:
            cursor.execute(
                _SUCCEED_MANY_SQL,
                [SUCCEEDED, json.dumps([_done_record(done) for done in successes]), RUNNING],
            )
            matched: int = cursor.rowcount
            return matched
        matched = 0
        for done in successes:
            job, value = done.job, done.return_value
            stored = None if value is None else _RETURN_VALUE.get_db_prep_save(value, connection)
            cursor.execute(
                _SUCCEED_SQL, [SUCCEEDED, done.finished_at, stored, job.pk, RUNNING, job.attempts, job.locked_by]
            )
            matched += cursor.rowcount
        return matched


def _done_record(done: Success) -> dict[str, Any]:
    """Return one success as the marks' JSON record; a job that returned nothing keeps a NULL return value."""
    job = done.job
    record = {
        "id": job.pk,
        "attempts": job.attempts,
        "locked_by": job.locked_by,
        "finished_at": done.finished_at.isoformat(),
    }
    if done.return_value is not None:
        record["return_value"] = done.return_value
    return record
