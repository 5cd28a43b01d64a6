"""The events of one window: deterministic ids and the payload contract (docs/inngest.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import inngest

from core.timefmt import iso_utc
from dispatch import keys
from dispatch.registry import CronJob


def event_data(
    *,
    job: CronJob,
    source: str,
    now: datetime,
    dispatch_key: str,
    correlation_id: str,
    window_start: datetime,
    window_seconds: int,
    params: dict[str, Any],
) -> dict[str, Any]:
    """Return `event.data` for a window (its start and length); `params` only for jobs that declare params."""
    data: dict[str, Any] = {
        "source": source,
        "requestedAt": iso_utc(now),
        "dispatchKey": dispatch_key,
        "correlationId": correlation_id,
        "dispatchWindowStart": iso_utc(window_start),
        "dispatchWindowSeconds": window_seconds,
    }
    if job.params:
        data["params"] = params
    return data


def window_events(job: CronJob, data: dict[str, Any]) -> list[inngest.Event]:
    """Return the job's events for the window, each with id `<event name>:<dispatch key>`."""
    return [inngest.Event(name=name, id=keys.event_id(name, data["dispatchKey"]), data=data) for name in job.events]
