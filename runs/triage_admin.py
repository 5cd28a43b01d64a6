"""The dead-letter admin's triage pages (docs/admin.md): a letter's own Requeue and Resolve buttons, the list grouped
by cause, and the actions on every unresolved letter of a cause.

Every button runs the same services as the changelist's actions (runs.triage), under the
same permission, and reports what it did and skipped in the message bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.admin.views.main import PAGE_VAR, ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.safestring import SafeString

from core.actions import ACTION_LIMIT
from core.admin import ReadOnlyAdmin, acting_user
from core.display import EMPTY, changelist_url, link, when
from core.notes import note_field
from runs.causes import cause_groups, open_letters_of
from runs.models import DeadLetter
from runs.triage import dead_letter_requeue, dead_letter_resolve

GROUP_VAR = "group"  # ?group=cause: the list grouped by cause
CAUSE_VAR = "cause"  # ?cause=<fingerprint>: one cause's letters
ACTION_VAR = "cause_action"
SELECTED_CAUSE = "_selected_cause"
RESOLVE_TEMPLATE = "admin/runs/deadletter/resolve_confirmation.html"
CAUSES_TEMPLATE = "admin/runs/deadletter/cause_groups.html"


class ResolveForm(forms.Form):
    note = note_field(help_text="Required: why these failures need no requeue (kept on each letter).")


class LetterChangeList(ChangeList):
    """The changelist, keeping `group=cause` in its links without taking it for a filter."""

    def get_filters_params(self, params: dict[str, Any] | None = None) -> dict[str, Any]:
        lookups: dict[str, Any] = super().get_filters_params(params)
        lookups.pop(GROUP_VAR, None)
        return lookups

    @property
    def grouped_url(self) -> str:
        return str(self.get_query_string({GROUP_VAR: "cause"}, [PAGE_VAR]))

    @property
    def list_url(self) -> str:
        return str(self.get_query_string(remove=[GROUP_VAR, PAGE_VAR]))

    def cause_url(self, fingerprint: str) -> str:
        return str(self.get_query_string({CAUSE_VAR: fingerprint}, [GROUP_VAR, PAGE_VAR]))


class LetterStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [("unresolved", "Unresolved"), ("requeued", "Requeued"), ("resolved", "Resolved")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        # `resolution` is "" exactly while `resolved_at` is NULL (a check constraint): one index serves all three.
        resolution = {"unresolved": "", "requeued": "requeued", "resolved": "resolved"}.get(self.value() or "")
        return queryset if resolution is None else queryset.filter(resolution=resolution)


class CauseFilter(admin.SimpleListFilter):
    """`?cause=<fingerprint>`: one cause's letters (shown in the sidebar only while it is chosen)."""

    title = "cause"
    parameter_name = CAUSE_VAR

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        value = self.value()
        return [(value, value if len(value) <= 60 else value[:59] + "…")] if value else []

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(fingerprint=value) if value else queryset


class TriagePages(ReadOnlyAdmin):
    """Pages and buttons of the dead-letter admin beyond Django's changelist and detail page."""

    def has_triage_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("runs.triage_deadletter")

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return LetterChangeList

    def get_urls(self) -> list[URLPattern]:
        # Before the admin's own: its "<path:object_id>/" would take "5/requeue/" for an id.
        name = f"{self.opts.app_label}_{self.opts.model_name}"
        return [
            path("<path:object_id>/requeue/", self.admin_site.admin_view(self.requeue_view), name=f"{name}_requeue"),
            path("<path:object_id>/resolve/", self.admin_site.admin_view(self.resolve_view), name=f"{name}_resolve"),
            *super().get_urls(),
        ]

    # What a letter's page says of its triage, by its state: a requeued letter was never "resolved".
    TRIAGE_FIELDS = {
        "": (),
        DeadLetter.Resolution.REQUEUED: ("requeued_at", "requeued_by", "requeued_link"),
        DeadLetter.Resolution.RESOLVED: ("resolved_at", "resolved_by", "note"),
    }

    def get_fields(self, request: HttpRequest, obj: DeadLetter | None = None) -> tuple[str, ...]:
        return (*(self.fields or ()), *self.TRIAGE_FIELDS.get(obj.resolution if obj else "", ()))

    @admin.display(description="cause")
    def cause(self, letter: DeadLetter) -> SafeString | str:
        if not letter.fingerprint:
            return EMPTY
        return link(changelist_url(DeadLetter, cause=letter.fingerprint, group="cause"), letter.fingerprint)

    @admin.display(description="requeued at")
    def requeued_at(self, letter: DeadLetter) -> str:
        return when(letter.resolved_at)

    @admin.display(description="requeued by")
    def requeued_by(self, letter: DeadLetter) -> object:
        return letter.resolved_by

    def render_change_form(self, request: HttpRequest, context: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        letter = kwargs.get("obj")
        context["triage_buttons"] = letter is not None and not letter.resolution and self.has_triage_permission(request)
        return super().render_change_form(request, context, *args, **kwargs)

    # --- One letter: its page's buttons ----------------------------------------------------------

    def requeue_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Requeue one letter (POST from its page) and go back to its page."""
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        letter = self._letter_to_triage(request, object_id)
        report = dead_letter_requeue(letter_ids=[letter.pk], user=acting_user(request), now=timezone.now())
        self.report(request, report, verb="Requeued", change_message="Requeued (its page).")
        return redirect(self._page_of(letter))

    def resolve_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        """Ask for the note (GET), then resolve one letter with it (POST) and go back to its page."""
        letter = self._letter_to_triage(request, object_id)
        form = ResolveForm(request.POST if request.method == "POST" else None)
        if letter.resolution or not form.is_valid():
            state = f"already {letter.resolution}: nothing to do" if letter.resolution else "unresolved"
            return self.resolve_page(
                request,
                form=form,
                intro="This dead letter will be resolved with this note (nothing is run again).",
                items=[f"#{letter.pk} {letter.kind} ({letter.get_source_display()}): {state}"],
                hidden=[],
                open_count=0 if letter.resolution else 1,
            )
        report = dead_letter_resolve(
            letter_ids=[letter.pk], user=acting_user(request), note=form.cleaned_data["note"], now=timezone.now()
        )
        self.report(request, report, verb="Resolved", change_message="Resolved (its page).")
        return redirect(self._page_of(letter))

    def _letter_to_triage(self, request: HttpRequest, object_id: str) -> DeadLetter:
        letter = self.get_object(request, unquote(object_id))
        if letter is None:
            raise Http404("No such dead letter.")
        if not (self.has_view_permission(request, letter) and self.has_triage_permission(request)):
            raise PermissionDenied
        return letter  # type: ignore[no-any-return]

    def _page_of(self, letter: DeadLetter) -> str:
        return reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[letter.pk])

    def resolve_page(
        self,
        request: HttpRequest,
        *,
        form: ResolveForm,
        intro: str,
        items: list[str],
        hidden: Sequence[tuple[str, Any]],
        open_count: int,
    ) -> TemplateResponse:
        """Return the page asking for the note of a resolve."""
        context = {
            **self.admin_site.each_context(request),
            "title": "Resolve dead letters",
            "opts": self.opts,
            "form": form,
            "intro": intro,
            "items": items,
            "hidden": hidden,
            "open_count": open_count,
            "submit_label": f"Resolve {open_count:,} dead letter{'' if open_count == 1 else 's'}",
            "media": self.media,
        }
        return TemplateResponse(request, RESOLVE_TEMPLATE, context)

    # --- The list grouped by cause ------------------------------------------------------------------

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if request.GET.get(GROUP_VAR) != "cause":
            return super().changelist_view(request, extra_context)
        if request.method == "POST" and ACTION_VAR in request.POST:
            return self._cause_action(request)
        response = super().changelist_view(request, extra_context)
        if isinstance(response, TemplateResponse) and response.context_data and "cl" in response.context_data:
            cl = response.context_data["cl"]
            response.template_name = CAUSES_TEMPLATE
            response.context_data.update(
                title="Dead letters by cause",
                groups=[(group, cl.cause_url(group.fingerprint)) for group in cause_groups(cl.queryset)],
                now=timezone.now(),
                can_triage=self.has_triage_permission(request),
                action_limit=ACTION_LIMIT,
            )
        return response

    def _cause_action(self, request: HttpRequest) -> HttpResponse:
        """Requeue, or resolve with a note, the unresolved letters of the selected causes (bounded, oldest first)."""
        if not self.has_triage_permission(request):
            raise PermissionDenied
        back = HttpResponseRedirect(request.get_full_path())
        causes = request.POST.getlist(SELECTED_CAUSE)
        action = request.POST.get(ACTION_VAR)
        if not causes or action not in ("requeue", "resolve"):
            self.message_user(request, "Nothing done: select one or more causes and an action.", messages.WARNING)
            return back
        letters = self.get_changelist_instance(request).queryset
        ids, rest = open_letters_of(letters, causes=causes, limit=ACTION_LIMIT)
        user, now = acting_user(request), timezone.now()
        if action == "requeue":
            report = dead_letter_requeue(letter_ids=ids, user=user, now=now)
            self.report(request, report, verb="Requeued", change_message="Requeued by cause (admin action).")
        else:
            form = ResolveForm(request.POST if request.POST.get("post") == "yes" else None)
            if not form.is_valid():
                return self._resolve_causes_page(request, form=form, letters=letters, causes=causes, ids=ids, rest=rest)
            report = dead_letter_resolve(letter_ids=ids, user=user, note=form.cleaned_data["note"], now=now)
            self.report(request, report, verb="Resolved", change_message="Resolved by cause (admin action).")
        if rest:
            more = f"{rest:,} more unresolved dead letter{'' if rest == 1 else 's'}"
            self.message_user(
                request,
                f"{more} of the selected causes remain{'s' if rest == 1 else ''} (at most {ACTION_LIMIT:,} are "
                "handled at a time): choose the action again.",
                messages.WARNING,
            )
        return back

    def _resolve_causes_page(
        self,
        request: HttpRequest,
        *,
        form: ResolveForm,
        letters: QuerySet[DeadLetter],
        causes: list[str],
        ids: list[int],
        rest: int,
    ) -> TemplateResponse:
        groups = cause_groups(letters.filter(fingerprint__in=causes))
        intro = (
            f"{len(ids):,} unresolved dead letter{'' if len(ids) == 1 else 's'} of {len(groups)} "
            f"cause{'' if len(groups) == 1 else 's'} will be resolved with this note (nothing is run again)."
        )
        if rest:
            intro += f" {rest:,} more remain: at most {ACTION_LIMIT:,} are resolved at a time."
        return self.resolve_page(
            request,
            form=form,
            intro=intro,
            items=[f"{group.unresolved:,} unresolved: {group.fingerprint or '(no error text)'}" for group in groups],
            hidden=[*((SELECTED_CAUSE, cause) for cause in causes), (ACTION_VAR, "resolve"), ("post", "yes")],
            open_count=len(ids),
        )
