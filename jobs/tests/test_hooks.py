from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import pytest
from django.core.exceptions import ImproperlyConfigured

from jobs import hooks
from jobs.claim import claim_batch
from jobs.context import RunOrigin
from jobs.models import BackgroundJob
from testsupport.single_job import run_job

pytestmark = pytest.mark.django_db


def test_job_died__without_the_dead_letter_writer_the_death_rolls_back(
    make_job: Callable[..., BackgroundJob], now: datetime, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hooks._job_died, "_target", None)  # as if runs were not installed
    job = make_job(kind="test.fail", max_attempts=1)
    [claimed] = claim_batch(now=now, limit=1, worker="w1")

    with pytest.raises(ImproperlyConfigured, match="add 'runs' to INSTALLED_APPS"):
        run_job(claimed, clock=lambda: now, origin=RunOrigin())

    job.refresh_from_db()
    assert (job.status, job.attempts) == ("running", 1)  # not dead without its letter: maintenance recovers it
