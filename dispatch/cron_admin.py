"""The admin's Cron jobs page: every registered cron job, its schedule, its last window, what is due, its pause.

Each row (dispatch.cron_rows) shows the job's schedule in words and its time zone,
its catch-up policy, its last window and that window's outcome, its next three fire
times, how late the cron service's ticks came (the last, the p95 over 24 hours), the
windows missed in the last 24 hours, and whether the job is paused (by whom, since
when, why). With the triage permission an operator pauses a job (with a note),
resumes it, triggers it now (a one-off `manual-` window, as `dispatch_tick --force`),
or back-fills a range of its past windows (dispatch.backfill, as `dispatch_tick
--from --to`: the list first, then the run). Viewing needs only the view permission.
Each action is recorded (who, when) in the job's history and reported in the message bar.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from core.admin import ReadOnlyAdmin, acting_user
from core.display import when
from core.notes import note_field
from core.timefmt import parse_iso_utc
from dispatch import keys
from dispatch.backfill import MAX_WINDOWS, PlannedWindow, backfill_plan, backfill_run
from dispatch.cron_rows import cron_job_rows
from dispatch.exceptions import RegistryError
from dispatch.models import CronJobState, DispatchWindow
from dispatch.registry import CronJob, get_cron_job
from dispatch.schedule import cron_job_pause, cron_job_resume, job_state
from dispatch.services import dispatch_tick

# The operator's actions on a cron job need what the dead-letter actions need (the run ledger's permission).
TRIAGE_PERMISSION = "runs.triage_deadletter"
UPCOMING = 3  # next fire times shown per job


class PauseForm(forms.Form):
    note = note_field(
        help_text="Required: why the job is paused, and until when (kept on the job, shown on this page)."
    )


class InstantField(forms.CharField):
    """An ISO-8601 instant with its offset (`2026-03-14T09:00:00Z`), as `dispatch_tick` takes it."""

    def to_python(self, value: Any) -> datetime | None:  # type: ignore[override]
        text = super().to_python(value)
        if not text:
            return None
        try:
            return parse_iso_utc(text)
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc


class BackfillForm(forms.Form):
    first = InstantField(
        label="From",
        widget=forms.TextInput(attrs={"size": 28, "placeholder": "2026-03-14T09:00:00Z"}),
        help_text="The first window start to tick, in ISO-8601 with its offset.",
    )
    last = InstantField(
        label="To",
        required=False,
        widget=forms.TextInput(attrs={"size": 28, "placeholder": "2026-03-14T18:00:00Z"}),
        help_text="The last window start to tick (empty: now).",
    )


@admin.register(CronJobState)
class CronJobStateAdmin(ReadOnlyAdmin):
    """Not a ledger of rows but the registry's jobs, each with its state (a row exists once it is needed)."""

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("", view(self.changelist_view), name="dispatch_cronjobstate_changelist"),
            path("<str:job>/pause/", view(self.pause_view), name="dispatch_cronjobstate_pause"),
            path("<str:job>/resume/", view(self.resume_view), name="dispatch_cronjobstate_resume"),
            path("<str:job>/trigger/", view(self.trigger_view), name="dispatch_cronjobstate_trigger"),
            path("<str:job>/backfill/", view(self.backfill_view), name="dispatch_cronjobstate_backfill"),
            path("<path:object_id>/history/", view(self.history_view), name="dispatch_cronjobstate_history"),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        now = timezone.now()
        try:
            rows, registry_error = cron_job_rows(now=now, upcoming=UPCOMING), ""
        except RegistryError as exc:
            rows, registry_error = [], str(exc)
        context = {
            **self.admin_site.each_context(request),
            "title": "Cron jobs",
            "opts": self.model._meta,
            "rows": rows,
            "now": now,
            "registry_error": registry_error,
            "can_act": request.user.has_perm(TRIAGE_PERMISSION),
            "media": self.media,
            **(extra_context or {}),
        }
        return TemplateResponse(request, "admin/dispatch/cronjobstate/cron_jobs.html", context)

    def pause_view(self, request: HttpRequest, job: str) -> HttpResponse:
        cron_job = self._acting_on(request, job)
        form = PauseForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            note = form.cleaned_data["note"]
            if cron_job_pause(job=cron_job.name, user=acting_user(request), note=note, now=timezone.now()):
                self._record(request, cron_job, f"Paused: {note}")
                self.message_user(
                    request, f"Paused {cron_job.name}: its ticks record their windows as paused until it is resumed."
                )
            else:
                self.message_user(request, f"{cron_job.name} is already paused: nothing changed.", messages.WARNING)
            return self._back()
        context = {
            **self.admin_site.each_context(request),
            "title": f"Pause {cron_job.name}",
            "opts": self.model._meta,
            "job": cron_job,
            "form": form,
            "media": self.media,
        }
        return TemplateResponse(request, "admin/dispatch/cronjobstate/pause.html", context)

    def resume_view(self, request: HttpRequest, job: str) -> HttpResponse:
        cron_job = self._acting_on(request, job, post_only=True)
        if cron_job_resume(job=cron_job.name, user=acting_user(request), now=timezone.now()):
            self._record(request, cron_job, "Resumed.")
            self.message_user(request, f"Resumed {cron_job.name}: its next tick runs.")
        else:
            self.message_user(request, f"{cron_job.name} was not paused: nothing changed.", messages.WARNING)
        return self._back()

    def trigger_view(self, request: HttpRequest, job: str) -> HttpResponse:
        cron_job = self._acting_on(request, job, post_only=True)
        result = dispatch_tick(
            job=cron_job,
            now=timezone.now(),
            source=DispatchWindow.Source.MANUAL,
            correlation_id=keys.correlation_id(None),
            force=True,
        )
        body = result.body
        outcome = f"{body['dispatchKey']} (mode {body['mode']}, HTTP-equivalent status {result.status_code})"
        self._record(request, cron_job, f"Triggered now: {outcome}.")
        if result.status_code >= 500:
            self.message_user(request, f"Triggered {cron_job.name}: {outcome} failed: {body['error']}", messages.ERROR)
        else:
            self.message_user(request, f"Triggered {cron_job.name} now: {outcome}.")
        return self._back()

    def backfill_view(self, request: HttpRequest, job: str) -> HttpResponse:
        """Show the range's windows (what would run, what is skipped); on confirmation, tick those that run."""
        cron_job = self._acting_on(request, job)
        form = BackfillForm(request.POST if request.method == "POST" else None)
        plan: list[PlannedWindow] = []
        now = timezone.now()
        if form.is_valid():
            first, last = form.cleaned_data["first"], form.cleaned_data["last"] or now
            try:
                plan = backfill_plan(cron_job, first=first, last=last, now=now)
            except ValueError as exc:
                form.add_error(None, str(exc))
            else:
                if "run" in request.POST:
                    return self._backfill(request, cron_job, plan, now=now)
        context = {
            **self.admin_site.each_context(request),
            "title": f"Back-fill {cron_job.name}",
            "opts": self.model._meta,
            "job": cron_job,
            "form": form,
            "plan": plan,
            "runs": sum(window.runs for window in plan),
            "max_windows": MAX_WINDOWS,
            "budget": settings.INLINE_TIME_BUDGET_SECONDS,
            "media": self.media,
        }
        return TemplateResponse(request, "admin/dispatch/cronjobstate/backfill.html", context)

    def _backfill(
        self, request: HttpRequest, job: CronJob, plan: list[PlannedWindow], *, now: datetime
    ) -> HttpResponse:
        """Tick the plan's windows, oldest first, for as long as a web request may take (INLINE_TIME_BUDGET_SECONDS)."""
        budget = settings.INLINE_TIME_BUDGET_SECONDS
        ran = backfill_run(
            job,
            plan,
            source=DispatchWindow.Source.MANUAL,
            correlation_id=keys.correlation_id(None),
            now=now,
            budget_seconds=budget,
        )
        failed = [result.body["dispatchKey"] for result in ran.ticks if result.status_code >= 500]
        runs = sum(window.runs for window in plan)
        outcome = (
            f"{len(ran.ticks)} of {len(plan)} windows from {when(plan[0].start)} to {when(plan[-1].start)} "
            f"ticked, {len(plan) - runs} skipped (already handled)"
        )
        if ran.not_reached:
            outcome += (
                f"; {len(ran.not_reached)} not reached in this request's time "
                f"(INLINE_TIME_BUDGET_SECONDS={budget:g} s): back-fill again from {when(ran.not_reached[0].start)}"
            )
        self._record(request, job, f"Back-filled: {outcome}.")
        if failed:
            self.message_user(
                request, f"Back-filled {job.name}: {outcome}; failed: {', '.join(failed)}", messages.ERROR
            )
        else:
            level = messages.WARNING if ran.not_reached else messages.SUCCESS
            self.message_user(request, f"Back-filled {job.name}: {outcome}.", level)
        return self._back()

    def _acting_on(self, request: HttpRequest, job: str, *, post_only: bool = False) -> CronJob:
        """Return the job an action names; refuse a user without the triage permission, or a GET that would act."""
        if not request.user.has_perm(TRIAGE_PERMISSION):
            raise PermissionDenied
        if post_only and request.method != "POST":
            raise PermissionDenied
        cron_job = get_cron_job(job)
        if cron_job is None:
            raise PermissionDenied
        return cron_job

    def _record(self, request: HttpRequest, job: CronJob, message: str) -> None:
        """Record who did what to the job, and when, in its history."""
        state = job_state(job.name, now=timezone.now())
        LogEntry.objects.log_actions(
            user_id=acting_user(request).pk,
            queryset=CronJobState.objects.filter(pk=state.pk),
            action_flag=CHANGE,
            change_message=message,
        )

    def _back(self) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:dispatch_cronjobstate_changelist"))
