"""The run ledger's event metrics (docs/operations.md, "Metrics"): dead letters written, second runs suppressed.

Each is counted once the row that records it commits.
"""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import Counter

from core.prometheus import after_commit

DEAD_LETTERS = Counter(
    "orchestrator_dead_letters",
    "Dead letters written, by source (job, function_run) and kind (the job's kind or the function's id).",
    ["source", "kind"],
)
SUPPRESSED_RUNS = Counter(
    "orchestrator_suppressed_duplicate_runs",
    "Second Inngest runs of a window that the run ledger stopped before they did any work, by function.",
    ["function"],
)


def dead_letter_count(*, source: str, kind: str) -> None:
    """Count a dead letter written, once it commits."""
    after_commit(DEAD_LETTERS.labels(source, kind).inc)


def suppressed_run_count(*, function_id: str) -> None:
    """Count a duplicate run the ledger stopped, once that commits."""
    after_commit(SUPPRESSED_RUNS.labels(function_id).inc)


def dead_letters_init(*, job_kinds: Iterable[str], function_ids: Iterable[str]) -> None:
    """Make the dead-letter counter of each job kind and function exist at 0, so that a first letter shows."""
    for kind in job_kinds:
        DEAD_LETTERS.labels("job", kind)
    for function_id in function_ids:
        DEAD_LETTERS.labels("function_run", function_id)
