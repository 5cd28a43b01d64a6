"""`manage.py cron_jobs [--json]`: every registered cron job, its schedule in words and ahead, its last window."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from dispatch.cron_rows import NEXT, cron_job_rows
from dispatch.exceptions import RegistryError


class Command(BaseCommand):
    help = (
        "List every registered cron job: its schedule (a cron expression, or null for fixed windows), time zone, "
        f"the schedule in words, its next {NEXT} fire times, its last window and whether it is paused."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print one JSON object per job, one per line")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            rows = cron_job_rows(now=timezone.now())
        except RegistryError as exc:
            raise CommandError(f"the cron registry is invalid: {exc}. Fix CRON_JOBS (docs/cron.md)") from exc
        if options["json"]:
            for row in rows:
                self.stdout.write(json.dumps(row.as_json()))
            return
        for row in rows:
            body = row.as_json()
            last = body["lastWindow"]
            schedule = body["schedule"] or f"window of {body['windowSeconds']} s"
            lines = [
                f"{row.job.name}: {row.description}{' (paused)' if row.paused else ''}",
                f"  schedule {schedule}, time zone {body['timezone']}",
                f"  next {', '.join(body['next'][:3])}",
                "  last window: none yet" if last is None else f"  last window {last['windowStart']} {last['status']}",
            ]
            self.stdout.write("\n".join(lines))
