"""`manage.py enqueue_job KIND [--payload JSON] ...`: enqueue background jobs from a shell."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from core.timefmt import parse_iso_utc
from jobs.exceptions import InvalidJob
from jobs.services import job_enqueue


class Command(BaseCommand):
    help = "Enqueue a background job (or --count of them) and print what was enqueued."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kind", help="a registered job kind or task module path, e.g. demo.echo")
        parser.add_argument(
            "--payload", default="{}", help='JSON payload (default: {}); a task\'s is {"args": [...], "kwargs": {...}}'
        )
        parser.add_argument("--tenant", default="", help="tenant id (default: global)")
        parser.add_argument("--dedupe-key", default=None, help="skip if a live job holds this key")
        parser.add_argument("--run-after", default=None, help="ISO-8601 instant, e.g. 2026-01-31T09:30:00Z")
        parser.add_argument("--max-attempts", type=int, default=5)
        parser.add_argument("--priority", type=int, default=0, help="-100..100, higher runs first")
        parser.add_argument("--count", type=int, default=1, help="enqueue this many identical jobs")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            payload = json.loads(options["payload"])
        except ValueError as exc:
            raise CommandError(
                f'--payload is not JSON ({exc}); e.g. --payload \'{{"kwargs": {{"message": "hi"}}}}\''
            ) from exc
        try:
            run_after = parse_iso_utc(options["run_after"]) if options["run_after"] else None
        except ValueError as exc:
            raise CommandError(f"--run-after: {exc}") from exc
        if options["count"] < 1:
            raise CommandError("--count must be at least 1")
        now = timezone.now()
        created = 0
        for _ in range(options["count"]):
            try:
                result = job_enqueue(
                    kind=options["kind"],
                    payload=payload,
                    tenant=options["tenant"],
                    dedupe_key=options["dedupe_key"],
                    run_after=run_after,
                    max_attempts=options["max_attempts"],
                    priority=options["priority"],
                    now=now,
                )
            except InvalidJob as exc:
                raise CommandError(str(exc)) from exc
            created += result.created
            verb = "enqueued" if result.created else "deduplicated onto"
            if options["count"] == 1 or options["verbosity"] > 1:
                self.stdout.write(f"{verb} job {result.job.pk} ({result.job.kind})")
        if options["count"] > 1:
            self.stdout.write(f"enqueued {created} {options['kind']} jobs")
