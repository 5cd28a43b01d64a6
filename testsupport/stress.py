"""How hard the process-level scenarios and property tests push: CI counts, or the issue's full counts.

`ORCHESTRATOR_STRESS=full` (read once, in testsupport.settings) selects the
full counts; anything else, or nothing, the scaled-down counts that keep `make
test` within the CI budget on two cores. docs/reliability.md lists both.
"""

from __future__ import annotations

from django.conf import settings

# Property tests run this many times more examples with ORCHESTRATOR_STRESS=full.
FULL_EXAMPLES_FACTOR = 10


def full() -> bool:
    """Return whether the full counts were asked for."""
    return bool(settings.ORCHESTRATOR_STRESS == "full")


def scaled(*, ci: int, full_count: int) -> int:
    """Return `full_count` under ORCHESTRATOR_STRESS=full, else `ci`."""
    return full_count if full() else ci


def examples(ci: int) -> int:
    """Return the number of hypothesis examples for a property test that runs `ci` in CI."""
    return ci * FULL_EXAMPLES_FACTOR if full() else ci
