"""Dispatch windows in the admin: one row per cron job per window, and the runs each one caused.

A window's outcome (its status: enqueued, inline, dispatch_failed, missed, paused,
abandoned, pending) and its mode (how its tick handled it) are told apart: the
outcome filter and badge say how it ended, in colour; the mode filter and badge say
how, neutrally. A failed publish keeps mode `dispatch`: only its outcome says it failed.

The Cron jobs page (pause, resume, trigger now) is dispatch.cron_admin.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.utils.html import format_html
from django.utils.safestring import SafeString

from core.admin import ReadOnlyAdmin
from core.admin_filters import DistinctValuesFilter
from core.display import ago, badge, changelist_url, clipped, duration, lateness, link, mode_badge, pretty_json, when
from dispatch import cron_admin  # noqa: F401  (registers the Cron jobs page)
from dispatch.models import STORED_MODES, DispatchWindow

if TYPE_CHECKING:
    from django.contrib.admin.filters import _ListFilterChoices

# The run ledger sits above dispatch: its rows are linked by admin URL name, never by importing the model.
FUNCTION_RUN = "runs.FunctionRun"
DEAD_LETTER = "runs.DeadLetter"


def window_cell(key: str, start: datetime | None) -> SafeString:
    """Return the start of the window `key` names, the key itself on hover (a one-off key's source says manual)."""
    return format_html('<span class="orch-window" title="{}">{}</span>', key, when(start))


class SpeltFilter(admin.ChoicesFieldListFilter):
    """A choices filter whose choices read as the list's cells spell them (`dispatch_failed`, not "Dispatch Failed")."""

    values: tuple[str, ...] = ()

    def label(self, value: str) -> str:
        return value

    def choices(self, changelist: ChangeList) -> Iterator[_ListFilterChoices]:
        yield {
            "selected": self.lookup_val is None,
            "query_string": changelist.get_query_string(remove=[self.lookup_kwarg, self.lookup_kwarg_isnull]),
            "display": "All",
        }
        for value in self.values:
            yield {
                "selected": self.lookup_val is not None and value in self.lookup_val,
                "query_string": changelist.get_query_string({self.lookup_kwarg: value}, [self.lookup_kwarg_isnull]),
                "display": self.label(value),
            }


class OutcomeFilter(SpeltFilter):
    """The window's status, under the name of what it says: how the window ended."""

    values = tuple(status.value for status in DispatchWindow.Status)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.title = "outcome"


class ModeFilter(SpeltFilter):
    """The modes a window records (a tick's `dispatch-failed` answer is the outcome dispatch_failed), and none."""

    values = (*STORED_MODES, "")

    def label(self, value: str) -> str:
        return value or "(none: missed)"


@admin.register(DispatchWindow)
class DispatchWindowAdmin(ReadOnlyAdmin):
    list_display = (
        "window",
        "cron_job",
        "status_badge",
        "mode_badge",
        "source",
        "latency",
        "publishes",
        "duplicates",
        "created",
        "runs_link",
    )
    list_filter = (("status", OutcomeFilter), ("mode", ModeFilter), ("job", DistinctValuesFilter), "source")
    search_fields = ("dispatch_key__exact", "correlation_id__exact")
    search_help_text = "An exact dispatch key or correlation id."
    # In window order, newest first: a window the reconciler recorded late sits with its neighbours.
    date_hierarchy = "window_start"
    ordering = ("-window_start", "-id")
    sortable_by = ("window", "cron_job", "created")
    secondary_columns = ("publishes", "duplicates", "created", "runs_link")
    fields = (
        "dispatch_key",
        "job",
        "status_badge",
        "mode_badge",
        "source",
        "reclaimed_by",
        "correlation_id",
        "window_start",
        "window_seconds",
        "requested_at",
        "tick_lateness",
        "latency",
        "publish_attempts",
        "claim",
        "duplicate_ticks",
        "error",
        "event_ids_json",
        "runs_link",
        "dead_letters_link",
        "created_at",
        "updated_at",
    )
    readonly_fields = fields

    @admin.display(description="window", ordering="window_start")
    def window(self, window: DispatchWindow) -> SafeString:
        return window_cell(window.dispatch_key, window.window_start)

    @admin.display(description="job", ordering="job")
    def cron_job(self, window: DispatchWindow) -> SafeString | str:
        return clipped(window.job)

    @admin.display(description="outcome", ordering="status")
    def status_badge(self, window: DispatchWindow) -> SafeString:
        return badge(window.outcome)

    @admin.display(description="mode", ordering="mode")
    def mode_badge(self, window: DispatchWindow) -> SafeString | str:
        return mode_badge(window.mode)

    @admin.display(description="publishes")
    def publishes(self, window: DispatchWindow) -> int:
        """The publish attempts (the column's header stays short: the page says "publish attempts")."""
        return window.publish_attempts

    @admin.display(description="duplicates")
    def duplicates(self, window: DispatchWindow) -> int:
        """The ticks of this window answered as duplicates."""
        return window.duplicate_ticks

    @admin.display(description="latency")
    def latency(self, window: DispatchWindow) -> str:
        return duration(window.latency_ms)

    @admin.display(description="lateness of the cron tick")
    def tick_lateness(self, window: DispatchWindow) -> str:
        """How late the cron service's tick came for the window (docs/operations.md, "Lateness and drift")."""
        return lateness(window.lateness_ms)

    @admin.display(description="created", ordering="created_at")
    def created(self, window: DispatchWindow) -> SafeString | str:
        return ago(window.created_at)

    @admin.display(description="runs")
    def runs_link(self, window: DispatchWindow) -> SafeString:
        return link(changelist_url(FUNCTION_RUN, dispatch_key=window.dispatch_key), "runs")

    @admin.display(description="dead letters")
    def dead_letters_link(self, window: DispatchWindow) -> SafeString:
        # Always shown (no query per page): the filtered changelist says when the window left none.
        return link(changelist_url(DEAD_LETTER, dispatch_key=window.dispatch_key), "dead letters of this window")

    @admin.display(description="event ids")
    def event_ids_json(self, window: DispatchWindow) -> SafeString:
        return pretty_json(window.event_ids)
