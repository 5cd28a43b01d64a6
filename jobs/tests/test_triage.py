from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial

import pytest
from django.db import DEFAULT_DB_ALIAS, connection, connections

from core.actions import ActionReport
from jobs.claim import claim_batch
from jobs.models import BackgroundJob
from jobs.services import job_enqueue
from jobs.triage import LOCKED, job_cancel, job_retry_now

pytestmark = pytest.mark.django_db


def statuses(*jobs: BackgroundJob) -> list[str]:
    return [BackgroundJob.objects.get(pk=job.pk).status for job in jobs]


def test_job_retry_now__makes_pending_jobs_due_and_skips_the_rest(
    make_job: Callable[..., BackgroundJob], now: datetime
) -> None:
    later = now + timedelta(hours=2)
    waiting = make_job(run_after=later, attempts=2, last_error="ValueError: boom")
    running = make_job(status="running", lease_expires_at=later, attempts=1)
    dead = make_job(status="dead", attempts=5, finished_at=now)

    report = job_retry_now(job_ids=[waiting.pk, running.pk, dead.pk, 999_999], now=now)

    assert report.message(verb="Made", singular="job", plural="jobs", then="due now") == (
        "Made 1 job due now. Skipped 3: 1 not pending (running); 1 not pending (dead); 1 deleted meanwhile."
    )
    waiting.refresh_from_db()
    assert (waiting.status, waiting.run_after, waiting.attempts) == ("pending", now, 2)
    running.refresh_from_db()
    assert running.run_after == now  # the make_job default, untouched
    assert statuses(running, dead) == ["running", "dead"]


def test_job_cancel__cancels_pending_jobs_only_and_frees_their_dedupe_key(
    make_job: Callable[..., BackgroundJob], now: datetime
) -> None:
    pending = job_enqueue(kind="test.record", dedupe_key="invoice-7", tenant="acme", now=now).job
    other = make_job()
    succeeded = make_job(status="succeeded", finished_at=now)

    report = job_cancel(job_ids=[pending.pk, other.pk, succeeded.pk], by="ops", now=now)

    assert (report.done, dict(report.skipped)) == ([pending.pk, other.pk], {"not pending (succeeded)": [succeeded.pk]})
    pending.refresh_from_db()
    assert (pending.status, pending.finished_at) == ("cancelled", now)
    assert statuses(other, succeeded) == ["cancelled", "succeeded"]
    # A cancelled job no longer holds its dedupe key: the same key enqueues a new job.
    again = job_enqueue(kind="test.record", dedupe_key="invoice-7", tenant="acme", now=now)
    assert again.created and again.job.pk != pending.pk


def test_job_cancel__a_cancelled_job_is_never_claimed(make_job: Callable[..., BackgroundJob], now: datetime) -> None:
    job = make_job()
    job_cancel(job_ids=[job.pk], by="ops", now=now)

    assert claim_batch(now=now + timedelta(minutes=1), limit=10, worker="w") == []


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("action", [partial(job_cancel, by="ops"), job_retry_now], ids=["cancel", "retry-now"])
def test_job_triage__a_row_locked_by_a_worker_is_skipped_not_waited_for(
    action: Callable[..., ActionReport], make_job: Callable[..., BackgroundJob], now: datetime
) -> None:
    held, free = make_job(), make_job()
    worker = connections.create_connection(DEFAULT_DB_ALIAS)  # another process's connection, holding a row
    try:
        with worker.cursor() as cursor:
            cursor.execute("BEGIN")
            cursor.execute("SELECT id FROM jobs_backgroundjob WHERE id = %s FOR UPDATE", [held.pk])
            with connection.cursor() as ours:
                ours.execute("SET lock_timeout = '10s'")  # waiting would fail the test, not hang it
            report = action(job_ids=[held.pk, free.pk], now=now)
            cursor.execute("ROLLBACK")
    finally:
        worker.close()
        with connection.cursor() as ours:
            ours.execute("RESET lock_timeout")

    assert (report.done, dict(report.skipped)) == ([free.pk], {LOCKED: [held.pk]})
    assert BackgroundJob.objects.get(pk=held.pk).status == "pending"
