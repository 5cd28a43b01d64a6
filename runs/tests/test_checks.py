"""The reconciler's settings: a bad value fails `manage.py check` with runs.E001 saying what to set."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("RECONCILE_LOOKBACK", "a day", "RECONCILE_LOOKBACK: 'a day' is not a period"),
        ("RECONCILE_RUN_BOUNDS", "{cron-x: 1}", "RECONCILE_RUN_BOUNDS is not JSON"),
        ("RECONCILE_RUN_BOUNDS", '{"cron-x": -1}', "RECONCILE_RUN_BOUNDS must be a JSON object of function id"),
        ("RECONCILE_CRON", "every 5 minutes", "RECONCILE_CRON='every 5 minutes' is not a cron schedule"),
        ("RECONCILE_GRACE_WINDOWS", -1, "RECONCILE_GRACE_WINDOWS must be 0 or more"),
    ],
)
def test_check__a_bad_reconciler_setting_is_runs_e001(settings: Any, name: str, value: object, message: str) -> None:
    setattr(settings, name, value)

    with pytest.raises(
        SystemCheckError, match=r"runs\.E001\) Invalid reconciler setting: " + message.replace("{", r"\{")
    ):
        call_command("check")


def test_check__the_default_reconciler_settings_pass() -> None:
    call_command("check")
