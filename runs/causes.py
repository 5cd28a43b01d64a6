"""Dead letters grouped by cause: the letters whose errors differ only in ids, numbers and times (docs/admin.md).

Each letter carries its cause (`DeadLetter.fingerprint`, written with the letter), and
an index on (resolution, fingerprint, created_at) answers the grouping of a million
letters as one index-only scan. A group's actions work on its unresolved letters, at
most a bounded number at a time, oldest first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Count, Max, Min, Q, QuerySet

from runs.models import DeadLetter

# The causes one page lists (the most frequent first): a list narrowed by a filter shows the rest.
GROUP_LIMIT = 100


@dataclass(frozen=True)
class CauseGroup:
    """The letters of one cause within a list: how many, how many are unresolved, which kinds, when."""

    fingerprint: str
    letters: int
    unresolved: int
    kinds: int
    kind: str  # the kind, when they are all of one (else the first, alphabetically)
    first_seen: datetime
    last_seen: datetime


def cause_groups(letters: QuerySet[DeadLetter], *, limit: int = GROUP_LIMIT) -> list[CauseGroup]:
    """Return the causes of `letters`, the most frequent first (at most `limit`)."""
    rows = (
        letters.order_by()
        .values("fingerprint")
        .annotate(
            letters=Count("*"),
            unresolved=Count("fingerprint", filter=Q(resolution="")),
            kinds=Count("kind", distinct=True),
            kind=Min("kind"),
            first_seen=Min("created_at"),
            last_seen=Max("created_at"),
        )
        .order_by("-letters", "fingerprint")[:limit]
    )
    return [CauseGroup(**row) for row in rows]


def open_letters_of(letters: QuerySet[DeadLetter], *, causes: Sequence[str], limit: int) -> tuple[list[int], int]:
    """Return the ids of up to `limit` unresolved letters of `causes` (oldest first), and how many more there are."""
    unresolved = letters.filter(fingerprint__in=list(causes), resolution="").order_by("created_at", "pk")
    ids = list(unresolved.values_list("pk", flat=True)[:limit])
    rest = unresolved.count() - len(ids) if len(ids) == limit else 0
    return ids, rest
