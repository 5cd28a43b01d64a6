"""Configuration checks of the job lease (plain `manage.py check`): every drain budget within half the lease.

A drain claims its batch at its start and reaches the batch's last job near its
end: a budget longer than half of JOBS_LEASE_SECONDS lets maintenance take jobs
back from a live worker (which then skips them: never run twice, only late).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, register

from jobs.lease import longest_safe_budget
from jobs.runner import DEFAULT_DRAIN_BUDGET_SECONDS
from orchestrator.checks import TAG

LEASE_HINT = "See docs/jobs.md, 'Leases'."


def lease_budget_messages(*, lease_seconds: int, budgets: list[tuple[str, str, float]]) -> list[CheckMessage]:
    """Refuse each (id, name, seconds) budget over half the lease: its drain's last jobs would lose their lease."""
    longest = longest_safe_budget()
    return [
        Error(
            f"{name} ({seconds:g} s) is more than half of JOBS_LEASE_SECONDS ({lease_seconds} s): a drain claims its "
            "batch at its start, and jobs it reaches late would be taken back by maintenance from a live worker.",
            hint=(
                f"Set {name} to at most {longest:g}, or JOBS_LEASE_SECONDS to at least {2 * seconds:g}."
                if name.isupper()
                else f"Set JOBS_LEASE_SECONDS to at least {2 * seconds:g}."
            )
            + f" {LEASE_HINT}",
            id=check_id,
        )
        for check_id, name, seconds in budgets
        if seconds > longest
    ]


@register(TAG)
def check_lease_budgets(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    return lease_budget_messages(
        lease_seconds=settings.JOBS_LEASE_SECONDS,
        budgets=[
            ("orchestrator.E010", "INNGEST_STEP_BUDGET_SECONDS", settings.INNGEST_STEP_BUDGET_SECONDS),
            ("orchestrator.E011", "INLINE_TIME_BUDGET_SECONDS", settings.INLINE_TIME_BUDGET_SECONDS),
            # Not a setting: run_jobs without --budget would refuse to start.
            ("orchestrator.E012", "The default budget of run_jobs", DEFAULT_DRAIN_BUDGET_SECONDS),
        ],
    )
