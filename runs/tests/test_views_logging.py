"""/api/inngest: an attempt that fails, as Inngest expects some to, is a warning, not Django's ERROR."""

from __future__ import annotations

import logging

import pytest

from runs.tests.test_functions import event
from testsupport.executor import Executor

pytestmark = pytest.mark.django_db(transaction=True)


def test_serve__a_failed_attempt_is_logged_as_a_warning_not_an_internal_server_error(
    executor: Executor, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)

    [run] = executor.deliver(event("cron/crash.requested", "cron:crash:2026-03-14T15:09"))

    assert run.status == "failed"
    assert not [record for record in caplog.records if record.name == "django.request"]
    attempts = [record for record in caplog.records if getattr(record, "action", "") == "inngest_call"]
    assert attempts and all(record.levelname == "WARNING" for record in attempts)
    assert attempts[0].getMessage() == "inngest function attempt failed: answered 500 for Inngest to retry"
    assert attempts[0].function.endswith("cron-crash")  # type: ignore[attr-defined]
    # The run's terminal failure is the run ledger's to say.
    assert {record.levelname for record in caplog.records if record.getMessage() == "run failed"} == {"ERROR"}
