"""`manage.py demo` (`make demo`): enqueue the demo jobs, tick background-jobs twice, and say what happened."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from core.timefmt import parse_iso_utc
from dispatch import keys
from dispatch.models import DispatchWindow
from dispatch.registry import BACKGROUND_JOBS, get_cron_job
from dispatch.services import TickResult, dispatch_tick
from jobs.models import BackgroundJob
from jobs.runner import jobs_run
from jobs.services import job_enqueue

# The five jobs: (kind, the task's arguments, max attempts).
JOBS = [
    *[("demo.echo", {"message": "hello from the demo"}, 5)] * 3,
    ("demo.sleep", {"seconds": 0.2}, 5),
    ("demo.fail", {}, 1),  # always fails: its one attempt makes it a dead letter
]


class Command(BaseCommand):
    help = (
        "Enqueue five demo jobs (one always fails), run one tick of background-jobs inline, tick the same window "
        "again to show the duplicate guard, and say what happened. For a local checkout (DEBUG on)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--at", help="tick the window of this ISO-8601 instant (default: now)")

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError(
                "demo enqueues demo jobs and ticks background-jobs: it is for a local checkout with DEBUG on "
                "(README, 'Two commands')"
            )
        now = timezone.now()
        try:
            at = parse_iso_utc(options["at"]) if options["at"] else now
        except ValueError as exc:
            raise CommandError(f"--at: {exc}") from exc
        job = get_cron_job(BACKGROUND_JOBS)
        assert job is not None  # built in
        ids = [
            job_enqueue(kind=kind, payload={"args": [], "kwargs": kwargs}, max_attempts=attempts, now=now).job.pk
            for kind, kwargs, attempts in JOBS
        ]
        self.say(
            "Enqueued 5 demo jobs: 3 demo.echo, 1 demo.sleep and 1 demo.fail, which always fails (to show a dead "
            "letter)."
        )
        window = job.timetable.window_of(at)
        ticked = DispatchWindow.objects.filter(dispatch_key=keys.dispatch_key(job.name, window)).exists()
        self.say(
            f"\nTick 1 of background-jobs, window {window:%Y-%m-%dT%H:%M}. "
            + (
                "That window was ticked already (make demo ran earlier in this minute), so this tick should run "
                "nothing."
                if ticked
                else "Nothing is configured, so it runs inline: maintenance, then a drain."
            )
            + " The two ERROR lines, 'job dead-lettered' and the Tasks framework's 'Task ... state=FAILED' with its"
            " traceback, are that failing demo job, demo.fail: expected."
        )
        first = self.tick(at=at, now=now)
        if first.body["duplicate"]:
            # Not a forced tick: running the window's work twice would count as a duplicate run in the SLO report.
            self.say(
                "It ran nothing (a duplicate); draining the new jobs directly instead, as "
                "'python manage.py run_jobs' does:"
            )
            self.say(json.dumps(jobs_run(budget_seconds=settings.INLINE_TIME_BUDGET_SECONDS).as_json(), indent=2))
        else:
            self.say(json.dumps(first.body, indent=2))
        self.say(
            '\nTick 2 of the same window: answered "duplicate": true and nothing ran, the one-run-per-window guard.'
        )
        second = self.tick(at=at, now=now)
        self.say(json.dumps(second.body))
        self.say("\n" + self.outcome(ids))

    def tick(self, *, at: Any, now: Any) -> TickResult:
        job = get_cron_job(BACKGROUND_JOBS)
        assert job is not None
        return dispatch_tick(
            job=job,
            now=now,
            source=DispatchWindow.Source.MANUAL,
            correlation_id=keys.correlation_id(None),
            params={},
            at=at,
        )

    def outcome(self, ids: list[int]) -> str:
        """Say how the demo's jobs ended, and what else waits in the queue."""
        statuses = dict(BackgroundJob.objects.filter(pk__in=ids).values_list("pk", "status"))
        succeeded = sum(1 for status in statuses.values() if status == BackgroundJob.Status.SUCCEEDED)
        dead = sum(1 for status in statuses.values() if status == BackgroundJob.Status.DEAD)
        text = f"Done: {succeeded} of the 5 jobs succeeded; {dead} became a dead letter (demo.fail), waiting for "
        text += "triage."
        pending = BackgroundJob.objects.filter(status=BackgroundJob.Status.PENDING).count()
        if pending:
            text += (
                f" {pending} other job{' is' if pending == 1 else 's are'} pending (enqueued outside the demo, or due "
                "later): the next tick runs what is due."
            )
        return text + " Serve it: make serve; the admin: make superuser, then http://127.0.0.1:8000/admin/"

    def say(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()
