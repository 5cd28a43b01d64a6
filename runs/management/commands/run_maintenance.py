"""`manage.py run_maintenance`: recover lost leases, prune, and report queue health once."""

from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand
from django.utils import timezone

from runs.maintenance import run_maintenance


class Command(BaseCommand):
    help = "Run the maintenance tasks once and print their JSON summary."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(json.dumps(run_maintenance(now=timezone.now())))
