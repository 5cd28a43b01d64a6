"""What an operator's bulk action did: the rows it changed, and the rows it skipped and why."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field

# Bulk actions refuse larger selections: narrow the changelist with a filter first.
ACTION_LIMIT = 1000


@dataclass
class ActionReport:
    """The primary keys an action handled, and those it skipped, grouped by reason."""

    done: list[int] = field(default_factory=list)
    skipped: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))

    def skip(self, pk: int, reason: str) -> None:
        self.skipped[reason].append(pk)

    @property
    def skipped_count(self) -> int:
        return sum(len(pks) for pks in self.skipped.values())

    def message(self, *, verb: str, singular: str, plural: str, then: str = "") -> str:
        """Return the message-bar text, e.g. "Requeued 2 dead letters. Skipped 1: already resolved.".

        `then` ends the first sentence after its count: verb "Made", then "due now".
        """
        noun = singular if len(self.done) == 1 else plural
        text = f"{verb} {len(self.done):,} {noun}{f' {then}' if then else ''}."
        if self.skipped:
            if len(self.skipped) == 1:
                reasons = next(iter(self.skipped))
            else:
                reasons = "; ".join(f"{len(pks):,} {reason}" for reason, pks in self.skipped.items())
            text += f" Skipped {self.skipped_count:,}: {reasons}."
        return text
