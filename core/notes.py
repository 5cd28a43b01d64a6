"""An operator's note (why a dead letter needs no requeue, why a cron job is paused): required, bounded, one form field.

The admin renders the field with `admin/core/note_field.html`.
"""

from __future__ import annotations

from django import forms

MAX_NOTE_LENGTH = 2000


def note_clean(note: str, *, missing: str) -> str:
    """Return `note` stripped; raise ValueError with `missing` when it is empty, or when it is too long."""
    note = note.strip()
    if not note:
        raise ValueError(missing)
    if len(note) > MAX_NOTE_LENGTH:
        raise ValueError(f"the note is {len(note)} characters long; at most {MAX_NOTE_LENGTH} are kept")
    return note


def note_field(*, help_text: str, rows: int = 4) -> forms.CharField:
    """Return the form field an admin action asks its note with."""
    return forms.CharField(
        widget=forms.Textarea(attrs={"rows": rows, "cols": 80}), max_length=MAX_NOTE_LENGTH, help_text=help_text
    )
