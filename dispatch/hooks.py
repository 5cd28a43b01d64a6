"""What the dispatcher asks of the layers above it: run a window's work inline (a hook registered at start-up).

An inline tick runs the cron job's work units through the run ledger, which sits
above dispatch. So dispatch defines what it needs (`InlineRunner`) and calls
`inline_run`; runs registers its runner in `RunsConfig.ready()`. With no runner
registered an inline tick raises rather than claim a window it cannot run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from core.hooks import Hook
from dispatch.registry import CronContext, CronJob


@dataclass
class InlineResult:
    """Each unit's output by function id, and the one-line errors of units that crashed."""

    summary: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)


class InlineRunner(Protocol):
    def __call__(self, *, job: CronJob, ctx: CronContext, payload: dict[str, Any]) -> InlineResult: ...


_runner: Hook[InlineRunner] = Hook("inline runner", provider="runs")


def inline_runner_register(runner: InlineRunner) -> None:
    """Have `runner` run every inline tick's work (once, at start-up)."""
    _runner.register(runner)


def inline_run(*, job: CronJob, ctx: CronContext, payload: dict[str, Any]) -> InlineResult:
    """Run every unit of `job` inline through the registered runner."""
    return _runner.target()(job=job, ctx=ctx, payload=payload)
