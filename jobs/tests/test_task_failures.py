"""Every way a task's attempt can fail reads back through `get_result`, with a TaskError that says what happened.

A handler's exception is one; the others end an attempt without one: its worker died
and its lease expired, an operator cancelled the job, or the group's COMMIT refused
the task's writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.db import IntegrityError
from django.test import Client
from django_tasks import TaskResultStatus, default_task_backend
from freezegun import freeze_time

from jobs.claim import claim_batch
from jobs.exceptions import JobCancelled, LeaseExpired
from jobs.lease import LeaseConnection
from jobs.maintenance import recover_expired_leases
from jobs.models import BackgroundJob
from jobs.runner import jobs_run
from testsupport import tasks

WORKER = "host:1:abc"


@pytest.fixture(autouse=True)
def _enqueue_at(now: datetime) -> Iterator[None]:
    """Enqueue at `now` (the backend reads the clock itself); the runner is given its clock."""
    with freeze_time(now):
        yield


@pytest.mark.django_db
def test_get_result__a_task_whose_worker_died_reads_back_the_lost_attempt(now: datetime) -> None:
    result = tasks.meaning_of_life.enqueue()  # one attempt, as a task has by default
    [claimed] = claim_batch(now=now, limit=1, worker=WORKER)
    assert LeaseConnection(separate=False).start(claimed, now=now)  # its function started, then the worker died

    recover_expired_leases(now=now + timedelta(minutes=2))
    read = default_task_backend.get_result(result.id)

    assert (read.status, read.attempts, read.worker_ids) == (TaskResultStatus.FAILED, 1, [WORKER])
    [error] = read.errors
    assert error.exception_class is LeaseExpired
    assert error.traceback.startswith(
        "jobs.exceptions.LeaseExpired: lease expired on attempt 1 of 1: the worker stopped\n"
        f"worker {WORKER}; started at 2026-03-14T15:09:26.500+00:00; lease expired at 2026-03-14T15:10:26.500+00:00;"
    )


@pytest.mark.django_db
def test_get_result__a_task_cancelled_in_the_admin_reads_back_its_cancellation(
    now: datetime, make_staff: Callable[..., Any]
) -> None:
    result = tasks.meaning_of_life.enqueue()
    job = BackgroundJob.objects.get(result_id=result.id)
    client = Client()
    client.force_login(make_staff("operator", "jobs.view_backgroundjob", "jobs.operate_backgroundjob"))

    answer = client.post("/admin/jobs/backgroundjob/", {"action": "cancel", "_selected_action": [job.pk]})
    read = default_task_backend.get_result(result.id)

    assert answer.status_code == 302
    assert (read.status, read.attempts) == (TaskResultStatus.FAILED, 0)
    [error] = read.errors
    assert error.exception_class is JobCancelled
    assert error.traceback == (
        "jobs.exceptions.JobCancelled: cancelled by an operator\n"
        "cancelled by operator at 2026-03-14T15:09:26.500+00:00\n"
    )
    job.refresh_from_db()
    assert job.last_error == "JobCancelled: cancelled by an operator"


@pytest.mark.django_db(transaction=True)
def test_get_result__a_task_whose_writes_fail_at_commit_reads_back_the_database_error(now: datetime) -> None:
    result = tasks.dangling_note.enqueue()

    summary = jobs_run(budget_seconds=30, clock=lambda: now)
    read = default_task_backend.get_result(result.id)

    assert (summary.claimed, summary.dead) == (1, 1)
    assert read.status == TaskResultStatus.FAILED
    [error] = read.errors
    assert error.exception_class is IntegrityError
    assert "violates foreign key constraint" in error.traceback
