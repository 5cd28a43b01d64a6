"""`manage.py dispatch_tick [JOB] [--at ISO] [--inline] [--force] [--json]`: a manual tick;
`dispatch_tick JOB --from ISO [--to ISO] [--dry-run]`: a back-fill of past windows (dispatch.backfill)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from core.timefmt import iso_utc, parse_iso_utc
from dispatch import keys
from dispatch.backfill import MAX_WINDOWS, backfill_plan, backfill_run
from dispatch.exceptions import InvalidParam
from dispatch.models import DispatchWindow
from dispatch.registry import BACKGROUND_JOBS, CronJob, cron_jobs
from dispatch.services import dispatch_tick
from dispatch.timetable import Timetable


class Command(BaseCommand):
    help = (
        "Run one tick of a cron job through the same service as /api/cron/<job>, and print its JSON. "
        "Exits 1 when the dispatch failed."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("job", nargs="?", default=BACKGROUND_JOBS, help="cron job name (default: %(default)s)")
        parser.add_argument(
            "--at",
            help="tick the window of this ISO-8601 instant, e.g. 2026-01-31T09:30:00Z: the current window or a past "
            "one (a back-fill); the next window only with --force",
        )
        parser.add_argument("--inline", action="store_true", help="emergency tick: run the work inline in this process")
        parser.add_argument(
            "--force", action="store_true", help="bypass the one-run-per-window guard with a one-off key"
        )
        parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a cron param")
        parser.add_argument(
            "--from",
            dest="first",
            help="back-fill: tick every window starting from this ISO-8601 instant to --to, skipping those handled "
            f"(at most {MAX_WINDOWS})",
        )
        parser.add_argument("--to", dest="last", help="back-fill: the last window start to tick (default: now)")
        parser.add_argument("--dry-run", action="store_true", help="back-fill: list the windows, tick none")
        parser.add_argument("--json", action="store_true", help="print only the JSON body")

    def handle(self, *args: Any, **options: Any) -> None:
        jobs = cron_jobs()
        job = jobs.get(options["job"])
        if job is None:
            raise CommandError(f"unknown cron job {options['job']!r}; registered: {', '.join(sorted(jobs))}")
        now = timezone.now()
        at = _instant(options, "at")
        if at is not None:
            start = job.timetable.window_of(at)
            _refuse_a_future_window(start, job.timetable, now=now, force=options["force"])
            _refuse_a_forgotten_window(start, now=now, force=options["force"])
        try:
            params = job.parse_params(dict(_split_param(text) for text in options["param"]))
        except InvalidParam as exc:
            raise CommandError(f"--param: {exc}") from exc
        if options["first"] is not None or options["last"] is not None or options["dry_run"]:
            self.backfill(job, options, params=params, now=now)
            return
        result = dispatch_tick(
            job=job,
            now=now,
            source=DispatchWindow.Source.EMERGENCY if options["inline"] else DispatchWindow.Source.MANUAL,
            correlation_id=keys.correlation_id(None),
            params=params,
            at=at,
            inline=options["inline"],
            force=options["force"],
        )
        text = json.dumps(result.body, indent=None if options["json"] else 2)
        self.stdout.write(text)
        if not options["json"]:
            self.stderr.write(f"HTTP-equivalent status {result.status_code}, mode {result.body['mode']}")
        if result.status_code >= 500:
            raise SystemExit(1)

    def backfill(self, job: CronJob, options: dict[str, Any], *, params: dict[str, Any], now: datetime) -> None:
        """Tick every window of the range (or, with --dry-run, list them); exit 1 when a tick failed."""
        if options["first"] is None:
            raise CommandError("--to and --dry-run back-fill a range: give its first window with --from ISO")
        if options["at"] or options["force"] or options["inline"]:
            raise CommandError("--from back-fills a range: leave out --at, --force and --inline")
        first, last = _instant(options, "first"), _instant(options, "last") or now
        assert first is not None
        try:
            plan = backfill_plan(job, first=first, last=last, now=now)
        except ValueError as exc:
            raise CommandError(f"--from/--to: {exc}") from exc
        # Not bounded by INLINE_TIME_BUDGET_SECONDS, as the admin's request is: a command may take its time.
        results = [] if options["dry_run"] else backfill_run(
            job, plan, source=DispatchWindow.Source.MANUAL, correlation_id=keys.correlation_id(None), now=now,
            params=params,
        ).ticks  # fmt: skip
        body = {
            "job": job.name,
            "dryRun": options["dry_run"],
            "windows": [
                {"dispatchKey": w.dispatch_key, "windowStart": iso_utc(w.start), "status": w.status or None,
                 "action": "run" if w.runs else "skip"}
                for w in plan
            ],
            "ticks": [result.body for result in results],
        }  # fmt: skip
        self.stdout.write(json.dumps(body, indent=None if options["json"] else 2))
        if not options["json"]:
            runs = sum(window.runs for window in plan)
            verb = "would tick" if options["dry_run"] else "ticked"
            self.stderr.write(f"{len(plan)} windows: {verb} {runs}, skipped {len(plan) - runs} already handled")
        if any(result.status_code >= 500 for result in results):
            raise SystemExit(1)


def _instant(options: dict[str, Any], name: str) -> datetime | None:
    """Return the option's ISO-8601 instant (None when not given); raise CommandError saying what to type."""
    text = options[name]
    try:
        return parse_iso_utc(text) if text else None
    except ValueError as exc:
        flag = {"first": "--from", "last": "--to"}.get(name, f"--{name}")
        raise CommandError(f"{flag}: {exc}") from exc


def _refuse_a_future_window(start: datetime, timetable: Timetable, *, now: datetime, force: bool) -> None:
    """Refuse a window that starts after the current one (the next one is allowed with --force).

    Claimed now, a future window would make its real tick a duplicate that runs
    nothing; a window further ahead than the next is refused even with --force, as
    the functions refuse its events.
    """
    current = timetable.window_of(now)
    if start <= current:
        return
    if keys.ahead_of_next_window(start, timetable=timetable, now=now):
        raise CommandError(
            f"--at: the window {start:%Y-%m-%dT%H:%M} has not started yet; "
            "tick a window that has started (the current one, or a past one)"
        )
    if not force:
        raise CommandError(
            f"--at: the window {start:%Y-%m-%dT%H:%M} starts after the current one ({current:%Y-%m-%dT%H:%M}): "
            "claimed now, its real tick would run nothing. Tick the current or a past window, or add --force "
            "to run the next one now under a one-off key"
        )


def _refuse_a_forgotten_window(start: datetime, *, now: datetime, force: bool) -> None:
    """Refuse a window older than the ledger's retention, unless --force.

    Maintenance prunes windows after WINDOWS_RETENTION_DAYS: whether such a window
    ran is no longer recorded, so its tick could run it a second time. With --force
    it runs under a one-off key, as the deliberate re-run it then is.
    """
    days = settings.WINDOWS_RETENTION_DAYS
    if force or start >= now - timedelta(days=days):
        return
    raise CommandError(
        f"--at: the window {start:%Y-%m-%dT%H:%M} is older than WINDOWS_RETENTION_DAYS={days}: "
        "the ledger no longer records whether it ran, so ticking it could run it twice. Add --force to run it "
        "again on purpose under a one-off key, or leave --at out to tick the current window"
    )


def _split_param(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise CommandError(f"--param {text!r}: write it as NAME=VALUE, e.g. --param tenant=acme")
    return name, value
