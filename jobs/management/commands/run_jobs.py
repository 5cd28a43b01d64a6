"""`manage.py run_jobs`: drain the queue from a worker process (beside or instead of cron)."""

from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from jobs.backend import configured_queues
from jobs.chores import WorkerChores
from jobs.lease import longest_safe_budget
from jobs.runner import DEFAULT_DRAIN_BUDGET_SECONDS, RunSummary
from jobs.worker import DEFAULT_GRACE_SECONDS, Worker


class Command(BaseCommand):
    help = (
        "Drain due background jobs for --budget seconds (or, with --loop, until SIGTERM/SIGINT) and print the "
        "summary. On a signal the running job may finish within --grace seconds; the others go back unstarted."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--budget",
            type=float,
            default=DEFAULT_DRAIN_BUDGET_SECONDS,
            help=f"seconds per drain, at most half of JOBS_LEASE_SECONDS (default {DEFAULT_DRAIN_BUDGET_SECONDS:g})",
        )
        parser.add_argument("--batch-size", type=int, default=None, help="jobs claimed per batch")
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

    def handle(self, *args: Any, **options: Any) -> None:
        longest = longest_safe_budget()
        if not 0 < options["budget"] <= longest:
            raise CommandError(
                f"--budget must be more than 0 and at most {longest:g} s (half of JOBS_LEASE_SECONDS="
                f"{settings.JOBS_LEASE_SECONDS}), got {options['budget']:g}: a drain claims its batch at its start, "
                "and its last jobs must still hold their lease when it reaches them"
            )
        if options["concurrency"] is not None and not 1 <= options["concurrency"] <= 64:
            raise CommandError("--concurrency must be from 1 to 64")
        queues = configured_queues()
        if options["queue"] is not None and queues and options["queue"] not in queues:
            raise CommandError(f"--queue {options['queue']!r} is not in TASKS' QUEUES: {', '.join(sorted(queues))}")
        if options["grace"] < 0:
            raise CommandError("--grace must be 0 or more seconds")
        Worker(
            budget_seconds=options["budget"],
            batch_size=options["batch_size"],
            concurrency=options["concurrency"],
            queue=options["queue"],
            loop=options["loop"],
            grace_seconds=options["grace"],
            emit=self._print,
            chores=WorkerChores() if options["loop"] else None,
        ).run()

    def _print(self, summary: RunSummary) -> None:
        self.stdout.write(json.dumps(summary.as_json()))
        self.stdout.flush()
