from __future__ import annotations

from datetime import datetime

import pytest
from django.core.exceptions import ImproperlyConfigured

from dispatch import hooks
from dispatch.registry import get_cron_job
from dispatch.services import dispatch_tick
from testsupport.models import CronRun

pytestmark = pytest.mark.django_db


def test_inline_run__without_the_runner_an_inline_tick_refuses(now: datetime, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hooks._runner, "_target", None)  # as if runs were not installed
    job = get_cron_job("counter")
    assert job is not None

    with pytest.raises(ImproperlyConfigured, match="no inline runner is registered: add 'runs' to INSTALLED_APPS"):
        dispatch_tick(job=job, now=now, source="cron", correlation_id="c1")

    assert not CronRun.objects.exists()
