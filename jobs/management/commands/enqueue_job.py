"""`manage.py enqueue_job KIND [--payload JSON] ...`: enqueue background jobs from a shell."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from core.timefmt import parse_iso_utc
from jobs.exceptions import InvalidJob, UnknownKind
from jobs.services import job_enqueue

# The queue's field names (as POST /api/jobs spells them) and the flags that set them here.
FLAGS = {
    "payload": "--payload",
    "tenant": "--tenant",
    "dedupeKey": "--dedupe-key",
    "runAfter": "--run-after",
    "maxAttempts": "--max-attempts",
    "priority": "--priority",
}
# --count enqueues this many jobs per transaction, and shows its progress after each.
CHUNK = 1000


class Command(BaseCommand):
    help = (
        "Enqueue a background job (or --count of them) and print what was enqueued; "
        f"a --count above {CHUNK:,} shows its progress on stderr."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("kind", help="a registered job kind or task module path, e.g. demo.echo")
        parser.add_argument(
            "--payload", default="{}", help='JSON payload (default: {}); a task\'s is {"args": [...], "kwargs": {...}}'
        )
        parser.add_argument("--tenant", default="", help="tenant id (default: global)")
        parser.add_argument("--dedupe-key", default=None, help="skip if a live job holds this key")
        parser.add_argument("--run-after", default=None, help="ISO-8601 instant, e.g. 2026-01-31T09:30:00Z")
        parser.add_argument(
            "--max-attempts", type=int, default=None, help="1..100 (default: the kind's, 5; a task's policy, 1)"
        )
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
        count = options["count"]
        if count < 1:
            raise CommandError(f"--count must be a whole number of at least 1, got {count}")
        fields = {
            "kind": options["kind"],
            "payload": payload,
            "tenant": options["tenant"],
            "dedupe_key": options["dedupe_key"],
            "run_after": run_after,
            "max_attempts": options["max_attempts"],
            "priority": options["priority"],
            "now": timezone.now(),
        }
        created, holders = 0, set()
        for start in range(0, count, CHUNK):
            size = min(CHUNK, count - start)
            with transaction.atomic():
                for _ in range(size):
                    result = _enqueue(fields)
                    created += result.created
                    if not result.created:
                        holders.add(result.job.pk)
            if count > CHUNK:
                self.stderr.write(f"enqueued {start + size:,} of {count:,} jobs")
        if count == 1:
            job = result.job
            if result.created:
                self.stdout.write(f"enqueued job {job.pk} ({job.kind})")
            else:
                self.stdout.write(f"deduplicated onto live job {job.pk} ({job.kind}): nothing enqueued")
            return
        noun = "job" if created == 1 else "jobs"
        text = f"enqueued {created:,} {options['kind']} {noun}"
        if holders:
            onto = ", ".join(str(pk) for pk in sorted(holders))
            text += f"; {count - created:,} deduplicated onto live job {onto}"
        self.stdout.write(text)


def _enqueue(fields: dict[str, Any]) -> Any:
    """Enqueue one job; turn a refusal into a CommandError naming the flag to fix."""
    try:
        return job_enqueue(**fields)
    except UnknownKind as exc:
        raise CommandError(exc.reason) from exc
    except InvalidJob as exc:
        raise CommandError(f"{FLAGS.get(exc.field, exc.field)}: {exc.reason}") from exc
