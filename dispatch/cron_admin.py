"""The admin's Cron jobs page: every registered cron job, its last window, what is due, and its pause.

Each row shows the job's window and catch-up policy, its last window and that
window's outcome, when the next window starts, the windows missed in the last 24
hours, and whether the job is paused (by whom, since when, why). With the triage
permission an operator pauses a job (with a note), resumes it, or triggers it now
(a one-off `manual-` window, as `dispatch_tick --force`). Viewing needs only the
view permission. Each action is recorded (who, when) in the job's history and
reported in the message bar.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from core.admin import ReadOnlyAdmin, acting_user
from core.notes import note_field
from dispatch import keys
from dispatch.exceptions import RegistryError
from dispatch.models import CronJobState, DispatchWindow
from dispatch.registry import CronJob, cron_jobs, get_cron_job
from dispatch.schedule import cron_job_pause, cron_job_resume, job_state
from dispatch.services import dispatch_tick

# The operator's actions on a cron job need what the dead-letter actions need (the run ledger's permission).
TRIAGE_PERMISSION = "runs.triage_deadletter"
MISSED_SINCE = timedelta(hours=24)


@dataclass(frozen=True)
class CronJobRow:
    """One registered cron job as the page shows it."""

    job: CronJob
    state: CronJobState | None
    last: DispatchWindow | None
    next_start: datetime
    missed: int

    @property
    def window(self) -> str:
        """Return the window as people say it: `1 min`, `5 min`, `90 min`, `1 h`, `1 d`."""
        seconds = self.job.window_seconds
        if seconds % 86_400 == 0:
            return f"{seconds // 86_400} d"
        if seconds % 3600 == 0:
            return f"{seconds // 3600} h"
        return f"{seconds // 60} min"

    @property
    def catch_up(self) -> str:
        return f"all (at most {self.job.catch_up_max})" if self.job.catch_up == "all" else self.job.catch_up

    @property
    def paused(self) -> bool:
        return self.state is not None and self.state.paused


class PauseForm(forms.Form):
    note = note_field(
        help_text="Required: why the job is paused, and until when (kept on the job, shown on this page)."
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
            path("<path:object_id>/history/", view(self.history_view), name="dispatch_cronjobstate_history"),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        now = timezone.now()
        try:
            rows, registry_error = cron_job_rows(now=now), ""
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


def cron_job_rows(*, now: datetime) -> list[CronJobRow]:
    """Return every registered cron job's row, in registry order; raise RegistryError when the registry is bad."""
    jobs = list(cron_jobs().values())
    states = {state.job: state for state in CronJobState.objects.select_related("paused_by", "resumed_by")}
    missed = dict(
        DispatchWindow.objects.filter(status=DispatchWindow.Status.MISSED, window_start__gte=now - MISSED_SINCE)
        .values_list("job")
        .annotate(n=Count("pk"))
        .values_list("job", "n")
    )
    return [
        CronJobRow(
            job=job,
            state=states.get(job.name),
            last=DispatchWindow.objects.filter(job=job.name).order_by("-window_start", "-created_at").first(),
            next_start=keys.window_start(now, job.window_seconds) + timedelta(seconds=job.window_seconds),
            missed=missed.get(job.name, 0),
        )
        for job in jobs
    ]
