"""`manage.py reconcile [--json]`: account for every window of every cron job once, and recover orphans."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from runs.reconcile import reconcile


class Command(BaseCommand):
    help = (
        "Record every ended window of every cron job that has no row (missed, paused, or caught up as the job's "
        "catch_up says), re-publish or abandon orphaned windows, end runs without progress; print the summary. "
        "Logs go to stderr."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print the summary as one line of JSON")

    def handle(self, *args: Any, **options: Any) -> None:
        summary = reconcile(now=timezone.now())  # its log lines go to stderr, as every command's (manage.py)
        self.stdout.write(json.dumps(summary, indent=None if options["json"] else 2))
