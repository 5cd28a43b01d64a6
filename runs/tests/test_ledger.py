"""The run ledger: a run the reconciler abandoned stays ended, whatever its late steps report."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from core.timefmt import iso_utc
from runs import ledger
from runs.models import DeadLetter, FunctionRun, FunctionRunAttempt
from runs.status import status_read

pytestmark = pytest.mark.django_db

KEY = "cron:counter:2026-03-14T15:05"


def abandoned_run(now: datetime) -> FunctionRun:
    """A run of cron-counter that began its step `run`, then was abandoned by the reconciler an hour later."""
    claim = ledger.run_claim(
        function_id="cron-counter", dispatch_key=KEY, run_id="01RUN", correlation_id="tick-1", source="cron",
        scope="global", step=None, now=now,
    )  # fmt: skip
    ledger.attempt_begin(run_pk=claim.run.pk, step="run", attempt=1, now=now)
    letter = ledger.run_abandon(run_pk=claim.run.pk, idle_since=now, payload=None, now=now + timedelta(hours=1))
    assert letter is not None
    return FunctionRun.objects.get(pk=claim.run.pk)


def test_run_finish__of_a_run_already_abandoned_changes_nothing_and_warns(
    now: datetime, caplog: pytest.LogCaptureFixture
) -> None:
    run = abandoned_run(now)
    caplog.clear()

    with caplog.at_level(logging.INFO, logger="runs.ledger"):
        ledger.run_finish(run_pk=run.pk, output={"cronRunId": 7}, now=now + timedelta(hours=2))

    blob = status_read(scope="global", job_name="cron-counter")
    assert blob is not None
    assert (blob["status"], blob["finishedAt"]) == ("failed", iso_utc(now + timedelta(hours=1)))
    after = FunctionRun.objects.get(pk=run.pk)
    assert (after.status, after.output, after.finished_at) == ("failed", None, run.finished_at)
    assert list(FunctionRunAttempt.objects.values_list("status", flat=True)) == ["failed"]
    messages = [(record.levelname, record.getMessage()) for record in caplog.records]
    assert ("INFO", "run finished") not in messages
    assert messages == [("WARNING", "run finished after it had already ended as failed: its output is not recorded")]
    assert DeadLetter.objects.count() == 1


def test_attempt_begin__of_a_run_no_longer_running_records_no_attempt_and_answers_its_status(now: datetime) -> None:
    run = abandoned_run(now)

    status = ledger.attempt_begin(run_pk=run.pk, step="finish", attempt=1, now=now + timedelta(hours=2))

    assert status == "failed"
    assert list(FunctionRunAttempt.objects.values_list("step", "status")) == [("run", "failed")]
    assert FunctionRun.objects.get(pk=run.pk).attempts == 1


def test_attempt_begin__of_a_running_run_records_the_attempt(now: datetime) -> None:
    claim = ledger.run_claim(
        function_id="cron-counter", dispatch_key=KEY, run_id="01RUN", correlation_id="tick-1", source="cron",
        scope="global", step=None, now=now,
    )  # fmt: skip

    status = ledger.attempt_begin(run_pk=claim.run.pk, step="run", attempt=1, now=now)
    again = ledger.attempt_begin(run_pk=claim.run.pk, step="run", attempt=1, now=now)  # the same request again

    assert (status, again) == ("running", "running")
    assert FunctionRun.objects.get(pk=claim.run.pk).attempts == 1


def test_run_claim__files_the_run_under_its_window_start(now: datetime) -> None:
    tick = ledger.run_claim(
        function_id="cron-counter", dispatch_key=f"{KEY}:manual-0a1b2c3d", run_id="01A", correlation_id="c",
        source="manual", scope="global", step=None, now=now,
    )  # fmt: skip
    refused = ledger.run_claim(
        function_id="cron-counter", dispatch_key="invalid:01B", run_id="01B", correlation_id="c", source="cron",
        scope="global", step=None, now=now,
    )  # fmt: skip

    assert tick.run.window_start == datetime(2026, 3, 14, 15, 5, tzinfo=UTC)
    assert refused.run.window_start == now  # a key that names no window: when the run started


@pytest.mark.django_db(transaction=True)
def test_migration__runs_written_before_it_get_their_window_start(now: datetime) -> None:
    keyed = FunctionRun.objects.create(function_id="cron-counter", dispatch_key=KEY, run_id="a", started_at=now)
    keyless = FunctionRun.objects.create(
        function_id="cron-counter", dispatch_key="invalid:b", run_id="b", started_at=now
    )
    executor = MigrationExecutor(connection)
    executor.migrate([("runs", "0004_dead_letter_cause_fingerprint")])  # before runs had a window start
    executor.loader.build_graph()

    executor.migrate(executor.loader.graph.leaf_nodes())

    keyed.refresh_from_db()
    keyless.refresh_from_db()
    assert (keyed.window_start, keyless.window_start) == (datetime(2026, 3, 14, 15, 5, tzinfo=UTC), now)
