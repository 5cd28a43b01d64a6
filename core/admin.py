"""Shared admin base: ledgers are browsed, never hand-edited, and stay fast on millions of rows."""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.base_user import AbstractBaseUser
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest

from core.actions import ACTION_LIMIT, ActionReport
from core.paging import LedgerPaginator


class ReadOnlyAdmin(admin.ModelAdmin[Any]):
    """A ModelAdmin that lists and shows rows but offers no add, change or delete.

    Its changelist never counts the whole table (see `core.paging`), offers no
    facet counts, and its date drill-down probes an index instead of scanning.
    """

    paginator = LedgerPaginator
    # Columns left out below 1280 px, so that the list fits a 1024 px screen (each row's page has them).
    secondary_columns: tuple[str, ...] = ()
    # Django renders each row's cells and checkbox in Python: 50 rows keep a page fast.
    list_per_page = 50
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    change_list_template = "admin/core/ledger_change_list.html"

    class Media:
        css = {"all": ["core/admin.css"]}

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        """Return the rows in the list's own order, so that a column sorted by ties in that order (newest first)."""
        return super().get_queryset(request).order_by(*self.get_ordering(request))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def selected_ids(self, request: HttpRequest, queryset: QuerySet[Any]) -> list[int] | None:
        """Return the selected rows' primary keys, or None (with a message) when there are too many."""
        ids = list(queryset.order_by("pk").values_list("pk", flat=True)[: ACTION_LIMIT + 1])
        if len(ids) > ACTION_LIMIT:
            self.message_user(
                request,
                f"Nothing done: more than {ACTION_LIMIT:,} rows are selected. Narrow the list with a filter "
                f"and act on at most {ACTION_LIMIT:,} at a time.",
                messages.ERROR,
            )
            return None
        return ids

    def report(
        self, request: HttpRequest, report: ActionReport, *, verb: str, change_message: str, then: str = ""
    ) -> None:
        """Show what an action did in the message bar, and record it in each changed row's history."""
        opts = self.model._meta
        text = report.message(
            verb=verb, singular=str(opts.verbose_name), plural=str(opts.verbose_name_plural), then=then
        )
        self.message_user(request, text, messages.WARNING if report.skipped else messages.SUCCESS)
        if report.done:
            LogEntry.objects.log_actions(
                user_id=acting_user(request).pk,
                queryset=self.model._default_manager.filter(pk__in=report.done),
                action_flag=CHANGE,
                change_message=change_message,
            )


def acting_user(request: HttpRequest) -> AbstractBaseUser:
    """Return the signed-in user behind an admin request."""
    user = request.user
    if not isinstance(user, AbstractBaseUser):  # The admin only serves signed-in staff.
        raise PermissionDenied
    return user
