"""`manage.py run_jobs`: drain the queue from a worker process (beside or instead of cron)."""

from __future__ import annotations

import json
import time
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from jobs.chores import WorkerChores
from jobs.runner import jobs_run


class Command(BaseCommand):
    help = "Drain due background jobs for --budget seconds (or, with --loop, forever) and print the summary."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--budget", type=float, default=10.0, help="seconds per drain (default 10)")
        parser.add_argument("--batch-size", type=int, default=None, help="jobs claimed per batch")
        parser.add_argument(
            "--concurrency", type=int, default=None, help="threads draining at once (default JOBS_CONCURRENCY)"
        )
        parser.add_argument(
            "--loop",
            action="store_true",
            help="keep draining; idle 1 s when empty; recover expired leases and reconcile every few minutes",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["budget"] <= 0:
            raise CommandError("--budget must be a positive number of seconds")
        if options["concurrency"] is not None and not 1 <= options["concurrency"] <= 64:
            raise CommandError("--concurrency must be from 1 to 64")
        chores = WorkerChores() if options["loop"] else None
        while True:
            if chores is not None:
                chores.run_if_due(now=timezone.now())
            summary = jobs_run(
                budget_seconds=options["budget"],
                batch_size=options["batch_size"],
                concurrency=options["concurrency"],
            )
            self.stdout.write(json.dumps(summary.as_json()))
            if not options["loop"]:
                return
            if summary.claimed == 0:
                time.sleep(1.0)
