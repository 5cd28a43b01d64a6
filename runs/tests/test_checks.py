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
        (
            "RECONCILE_CRON",
            "every 5 minutes",
            "RECONCILE_CRON='every 5 minutes' has 3 fields: Inngest reads exactly five",
        ),
        ("RECONCILE_CRON", "0 */5 * * * *", "RECONCILE_CRON='0 \\*/5 \\* \\* \\* \\*' has 6 fields"),
        ("RECONCILE_CRON", "@hourly", "RECONCILE_CRON='@hourly' has 1 field:"),
        ("RECONCILE_CRON", "0 0 * * 7", "RECONCILE_CRON='0 0 \\* \\* 7' day of week '7' is not"),
        ("RECONCILE_CRON", "0 0 L * *", "RECONCILE_CRON='0 0 L \\* \\*' day of month 'L' is not"),
        ("RECONCILE_CRON", "TZ=Mars/Olympus */5 * * * *", "RECONCILE_CRON='TZ=Mars/Olympus .*' names no time zone"),
        (
            "RECONCILE_RUN_BOUNDS",
            '{"cron-x": 60}',
            "RECONCILE_RUN_BOUNDS gives cron-x 60 s, less than Inngest may wait before it tries a step again "
            "\\(110 s with INNGEST_FUNCTION_RETRIES=3\\)",
        ),
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


@pytest.mark.parametrize("schedule", ["TZ=Europe/Paris 30 2 * * mon-fri", "CRON_TZ=UTC 0 */2 1,15 jan-jun ?"])
def test_check__a_schedule_inngest_reads_passes(settings: Any, schedule: str) -> None:
    settings.RECONCILE_CRON = schedule

    call_command("check")
