"""`manage.py inngest_functions [--json]`: which of the app's functions Inngest has registered."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from core.inngest import current_config
from runs.registered import RegistryUnknown, functions_registered

UNKNOWN = 2  # the exit status when Inngest cannot say; 1 is a function never registered


class Command(BaseCommand):
    help = (
        "Ask Inngest (INNGEST_BASE_URL or INNGEST_API_BASE_URL, the dev server, or Inngest Cloud) which of the "
        "functions this app serves it has registered. Exits 1 when one was never registered (sync the app: "
        "docs/inngest.md, 'Syncing'), 2 when Inngest cannot say."
    )
    # It answers even beside a configuration error: one (a cron schedule Inngest cannot read) may be why.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print the answer as one JSON object")

    def handle(self, *args: Any, **options: Any) -> None:
        config = current_config()
        if not config.servable:
            raise CommandError(
                "Inngest is not configured: set INNGEST_SIGNING_KEY (or INNGEST_DEV=1 for the dev server)",
                returncode=UNKNOWN,
            )
        if not config.signing_key_usable:
            raise CommandError(
                "INNGEST_SIGNING_KEY is not a key Inngest can use: run 'python manage.py check' (orchestrator.E013)",
                returncode=UNKNOWN,
            )
        try:
            registered = functions_registered(config=config)
        except RegistryUnknown as exc:
            raise CommandError(str(exc), returncode=UNKNOWN) from exc
        if options["json"]:
            body = {"url": registered.url, "served": registered.served, "missing": registered.missing}
            self.stdout.write(json.dumps(body))
        else:
            for fn_id in registered.served:
                self.stdout.write(f"{fn_id}  {'NOT REGISTERED' if fn_id in registered.missing else 'registered'}")
            self.stdout.write(
                f"{len(registered.missing)} of {len(registered.served)} functions not registered with {registered.url}"
                if registered.missing
                else f"every function is registered with {registered.url}"
            )
        if registered.missing:
            raise SystemExit(1)
