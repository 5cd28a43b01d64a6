"""Dead-letter triage (docs/admin.md): requeue a terminal failure, or resolve it with a note.

Both record who acted and when on the letter. Each letter is judged on its own: a
letter that is already resolved, or that cannot be requeued any more, is skipped
with the reason, and the others go ahead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction

from core.actions import ActionReport
from core.notes import note_clean
from core.timefmt import parse_iso_utc
from dispatch import keys
from dispatch.registry import CronJob, job_of_function
from dispatch.services import dispatch_tick
from jobs.exceptions import InvalidJob
from jobs.registry import find_handler
from jobs.services import job_enqueue
from runs.models import DeadLetter

logger = logging.getLogger(__name__)

# A letter already handled is skipped, saying how: requeued is never called resolved.
HANDLED_MEANWHILE = "requeued or resolved meanwhile"
GONE = "deleted meanwhile"
NOT_ATTEMPTED = "not attempted: an earlier publish in this batch failed"
OUT_OF_TIME = "not attempted: the re-runs before it took this request's time (INLINE_TIME_BUDGET_SECONDS)"
# 202 dispatched, 200 ran inline; 503 (publish failed) and 500 (inline crash) leave the letter open.
REQUEUED_STATUS_CODES = frozenset({200, 202})
DISPATCH_FAILED_STATUS_CODE = 503


def already(resolution: str) -> str:
    """Return why a letter already handled is skipped: "already requeued" or "already resolved"."""
    return f"already {resolution}"


@dataclass(frozen=True)
class Redispatch:
    """How to run a run-sourced letter's function again: its job narrowed to it, its window, params."""

    job: CronJob
    at: datetime
    params: dict[str, Any]
    correlation_id: str


def dead_letter_requeue(*, letter_ids: Sequence[int], user: AbstractBaseUser, now: datetime) -> ActionReport:
    """Requeue each unresolved letter of `letter_ids` and return what was done and skipped.

    A job letter gets a fresh pending job (same kind, payload, tenant, dedupe key,
    priority, queue and max attempts), linked from the letter; while a live job
    holds its dedupe key the letter is skipped, naming that job. A run letter's
    function is dispatched again for its window under a new manual key
    (`cron:<job>:<window>:manual-<8 hex>`) through the normal dispatcher, which
    publishes its event or runs it inline.
    After a failed publish, the batch's remaining run letters are not attempted: each
    would most likely fail the same way, after waiting for the publish bound. Nor are
    they once the batch has spent INLINE_TIME_BUDGET_SECONDS (inline re-runs each take
    up to that): an admin request stays bounded, and the operator requeues the rest.
    """
    report = ActionReport()
    letters = {letter.pk: letter for letter in DeadLetter.objects.filter(pk__in=letter_ids)}
    publish_failed = False
    deadline = time.monotonic() + settings.INLINE_TIME_BUDGET_SECONDS
    for pk in sorted(set(letter_ids)):
        letter = letters.get(pk)
        reason: str | None
        if letter is None:
            reason = GONE
        elif letter.resolved_at is not None:
            reason = already(letter.resolution)
        elif letter.source == DeadLetter.Source.JOB:
            reason = _requeue_job_letter(pk, user=user, now=now)
        elif publish_failed:
            reason = NOT_ATTEMPTED
        elif time.monotonic() >= deadline:
            reason = OUT_OF_TIME
        else:
            reason, publish_failed = _requeue_run_letter(letter, user=user, now=now)
        if reason is None:
            report.done.append(pk)
        else:
            report.skip(pk, reason)
    logger.info(
        "dead letters requeued",
        extra={
            "action": "dead_letter_requeue",
            "requeued": len(report.done),
            "skipped": report.skipped_count,
            "user": user.get_username(),
        },
    )
    return report


@transaction.atomic
def _requeue_job_letter(pk: int, *, user: AbstractBaseUser, now: datetime) -> str | None:
    """Enqueue a fresh copy of the letter's job and link it; return why not, or None."""
    letter = DeadLetter.objects.select_for_update(of=("self",)).select_related("job").filter(pk=pk).first()
    if letter is None:
        return GONE
    if letter.resolved_at is not None:
        return already(letter.resolution)
    job = letter.job
    if job is None:  # The check constraint gives every job letter its job; keep mypy and a broken row honest.
        return "the letter has no job"
    if find_handler(job.kind) is None:
        return f"job kind {job.kind!r} is no longer registered"
    try:
        enqueued = job_enqueue(
            kind=job.kind,
            payload=job.payload,
            tenant=job.tenant,
            dedupe_key=job.dedupe_key,
            max_attempts=job.max_attempts,
            priority=job.priority,
            queue=job.queue,
            now=now,
        )
    except InvalidJob as exc:
        return f"cannot enqueue it again ({exc})"
    fresh = enqueued.job
    if not enqueued.created:  # The key's live holder was found, and nothing was written.
        tenant = f" of tenant {job.tenant!r}" if job.tenant else ""
        return (
            f"live job {fresh.pk} ({fresh.status}){tenant} holds its dedupe key {job.dedupe_key!r}: "
            "requeue the letter once that job has finished, or resolve it"
        )
    DeadLetter.objects.filter(pk=pk).update(
        resolution=DeadLetter.Resolution.REQUEUED, resolved_at=now, resolved_by=user, requeued_job=fresh
    )
    logger.info(
        "dead letter requeued as a job",
        extra={"action": "dead_letter_requeue", "deadLetterId": pk, "jobId": fresh.pk, "kind": job.kind},
    )
    return None


def _requeue_run_letter(letter: DeadLetter, *, user: AbstractBaseUser, now: datetime) -> tuple[str | None, bool]:
    """Dispatch the letter's function again; return (why not or None, whether the publish failed).

    The letter is claimed first with a conditional update, so two operators cannot
    both re-dispatch it; the dispatcher's own writes then commit as they always do
    (they are not held in one long transaction with the claim). If the tick does not
    succeed the claim is undone and the letter stays open. A process that dies
    between the claim and the tick's answer leaves the letter `requeued` without a
    key (its page shows "requeued as —"): look for the window under its correlation id.
    """
    plan = redispatch_plan(letter)
    if isinstance(plan, str):
        return plan, False
    claimed = DeadLetter.objects.filter(pk=letter.pk, resolved_at__isnull=True).update(
        resolution=DeadLetter.Resolution.REQUEUED, resolved_at=now, resolved_by=user
    )
    if not claimed:
        return HANDLED_MEANWHILE, False
    try:
        result = dispatch_tick(
            job=plan.job,
            now=now,
            source="manual",
            correlation_id=plan.correlation_id,
            params=plan.params,
            at=plan.at,
            force=True,
        )
    except BaseException:
        _unclaim(letter.pk, now=now)
        raise
    key = result.body["dispatchKey"]
    extra = {
        "action": "dead_letter_requeue",
        "deadLetterId": letter.pk,
        "dispatchKey": key,
        "mode": result.body["mode"],
    }
    if result.status_code in REQUEUED_STATUS_CODES:
        DeadLetter.objects.filter(pk=letter.pk).update(requeued_dispatch_key=key)
        logger.info("dead letter requeued as a dispatch", extra=extra)
        return None, False
    _unclaim(letter.pk, now=now)
    error = result.body.get("error") or f"status {result.status_code}"
    logger.error("dead letter requeue failed", extra={**extra, "error": error})
    if result.status_code == DISPATCH_FAILED_STATUS_CODE:
        return f"dispatch failed: {error}", True
    # An inline re-run that failed left its own letter, under the new key: the operator has two to look at now.
    left = DeadLetter.objects.filter(dispatch_key=key).values_list("pk", flat=True).first()
    if left is not None:
        return f"the re-run failed: {error}; its failure is a new unresolved dead letter, #{left} ({key})", False
    return f"the re-run failed: {error}", False


def redispatch_plan(letter: DeadLetter) -> Redispatch | str:
    """Return how to dispatch a run letter's function again, or why it cannot be."""
    payload = letter.payload
    if not isinstance(payload, dict) or not isinstance(payload.get("event"), str):
        return "its payload has no event to re-publish"
    data = payload.get("data")
    if not isinstance(data, dict):
        return "its payload has no event data to re-publish"
    job = job_of_function(letter.kind)
    if job is None:
        return f"function {letter.kind!r} is no longer registered"
    try:
        at = parse_iso_utc(str(data.get("dispatchWindowStart", "")))
    except ValueError:
        return "its payload has no valid dispatchWindowStart"
    params = data.get("params", {})
    if not isinstance(params, dict):
        return "its payload's params are not an object"
    return Redispatch(
        job=job.only(letter.kind),
        at=at,
        params=params,
        correlation_id=letter.correlation_id or keys.correlation_id(None),
    )


def _unclaim(pk: int, *, now: datetime) -> None:
    DeadLetter.objects.filter(
        pk=pk, resolution=DeadLetter.Resolution.REQUEUED, resolved_at=now, requeued_dispatch_key=""
    ).update(resolution="", resolved_at=None, resolved_by=None)


@transaction.atomic
def dead_letter_resolve(*, letter_ids: Sequence[int], user: AbstractBaseUser, note: str, now: datetime) -> ActionReport:
    """Resolve every unresolved letter of `letter_ids` with `note`; skip the others.

    Raise ValueError when the note is empty or too long: a resolution must say why
    the failure needs no requeue.
    """
    note = note_clean(note, missing="a note is required: say why these failures need no requeue")
    ids = sorted(set(letter_ids))
    resolutions = dict(
        DeadLetter.objects.select_for_update().filter(pk__in=ids).order_by("pk").values_list("pk", "resolution")
    )
    report = ActionReport()
    for pk in ids:
        if pk not in resolutions:
            report.skip(pk, GONE)
        elif resolutions[pk]:
            report.skip(pk, already(resolutions[pk]))
        else:
            report.done.append(pk)
    DeadLetter.objects.filter(pk__in=report.done).update(
        resolution=DeadLetter.Resolution.RESOLVED, resolved_at=now, resolved_by=user, note=note
    )
    logger.info(
        "dead letters resolved",
        extra={
            "action": "dead_letter_resolve",
            "resolved": len(report.done),
            "skipped": report.skipped_count,
            "user": user.get_username(),
        },
    )
    return report
