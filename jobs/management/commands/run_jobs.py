"""`manage.py run_jobs`: drain the queue from a worker process (beside or instead of cron)."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.backend import configured_queues
from jobs.checks import tasks_problems
from jobs.chores import WorkerChores
from jobs.lease import longest_safe_budget
from jobs.runner import DEFAULT_DRAIN_BUDGET_SECONDS, RunSummary
from jobs.worker import DEFAULT_GRACE_SECONDS, Worker

MAX_BATCH_SIZE = 10_000
MAX_CONCURRENCY = 64


class Command(BaseCommand):
    help = (
        "Drain due background jobs for --budget seconds (or, with --loop, until SIGTERM/SIGINT) and print the "
        "summary: with --loop, one line per drain that ran jobs (logs go to stderr). On a signal the running job "
        "may finish within --grace seconds; the others go back unstarted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--budget",
            type=float,
            default=DEFAULT_DRAIN_BUDGET_SECONDS,
            help=f"seconds per drain, at most half of JOBS_LEASE_SECONDS (default {DEFAULT_DRAIN_BUDGET_SECONDS:g})",
        )
        parser.add_argument(
            "--batch-size",
            type=int,
            default=None,
            help=f"jobs claimed per batch, 1 to {MAX_BATCH_SIZE:,} (default JOBS_BATCH_SIZE)",
        )
        parser.add_argument(
            "--concurrency", type=int, default=None, help="threads draining at once (default JOBS_CONCURRENCY)"
        )
        parser.add_argument(
            "--loop",
            action="store_true",
            help="keep draining; idle, wait for a job to become due (LISTEN/NOTIFY; a poll every JOBS_POLL_SECONDS); "
            "recover expired leases and reconcile at start and every WORKER_CHORE_INTERVAL_SECONDS",
        )
        parser.add_argument("--queue", default=None, help="claim only this Tasks queue's jobs (default: every queue)")
        parser.add_argument(
            "--grace",
            type=float,
            default=DEFAULT_GRACE_SECONDS,
            help=f"seconds the running job may take to finish after SIGTERM/SIGINT (default {DEFAULT_GRACE_SECONDS:g})",
        )

    def execute(self, *args: Any, **options: Any) -> str | None:
        """Refuse a TASKS the backends cannot be built from on one line, before the system checks build them."""
        problems = tasks_problems()
        if problems:
            raise CommandError(f"{'; '.join(problems)}. Fix TASKS (docs/tasks.md, 'Settings')")
        return super().execute(*args, **options)

    def handle(self, *args: Any, **options: Any) -> None:
        longest = longest_safe_budget()
        if not 0 < options["budget"] <= longest:
            raise CommandError(
                f"--budget must be more than 0 and at most {longest:g} s (half of JOBS_LEASE_SECONDS="
                f"{settings.JOBS_LEASE_SECONDS}), got {options['budget']:g}: a drain claims its batch at its start, "
                "and its last jobs must still hold their lease when it reaches them"
            )
        if options["batch_size"] is not None and not 1 <= options["batch_size"] <= MAX_BATCH_SIZE:
            raise CommandError(
                f"--batch-size must be a whole number from 1 to {MAX_BATCH_SIZE:,}, got {options['batch_size']}"
            )
        if options["concurrency"] is not None and not 1 <= options["concurrency"] <= MAX_CONCURRENCY:
            raise CommandError(
                f"--concurrency must be a whole number from 1 to {MAX_CONCURRENCY}, got {options['concurrency']}"
            )
        queues = configured_queues()
        if options["queue"] is not None and queues and options["queue"] not in queues:
            raise CommandError(f"--queue {options['queue']!r} is not in TASKS' QUEUES: {', '.join(sorted(queues))}")
        if options["grace"] < 0:
            raise CommandError("--grace must be 0 or more seconds")
        self.worker = Worker(
            budget_seconds=options["budget"],
            batch_size=options["batch_size"],
            concurrency=options["concurrency"],
            queue=options["queue"],
            loop=options["loop"],
            grace_seconds=options["grace"],
            emit=self._print,
            chores=WorkerChores() if options["loop"] else None,
        )
        self.worker.run()

    def _print(self, summary: RunSummary) -> None:
        """Print a drain's summary: each one that did work, and the last one (a standing worker idles quietly)."""
        last = not self.worker.loop or self.worker.stop.is_set()
        if summary.claimed or summary.lease_lost or last:
            self.stdout.write(json.dumps(summary.as_json()))
            self.stdout.flush()
