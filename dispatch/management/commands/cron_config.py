"""`manage.py cron_config --format crontab|kubernetes|systemd --url URL`: the cron service's configuration."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dispatch.cron_config import FORMATS, Target, cron_config
from dispatch.exceptions import CronConfigError, RegistryError
from dispatch.registry import cron_jobs

# A URL the shell, cron and systemd all read as it is written (no quotes, `$`, spaces, brackets, `;`, `&`, `?`, `#`).
URL_RE = re.compile(r"[A-Za-z0-9._~:/@%+=,-]+")
ENV_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# A path the crontab's shell and systemd both read as it is written: no spaces, quotes or `%`.
ENV_FILE_RE = re.compile(r"/[A-Za-z0-9._/-]{1,255}")


class Command(BaseCommand):
    help = (
        "Print the external cron service's configuration from the registry: each cron job's schedule and time zone, "
        "the URL of its tick, the bearer header read from an environment variable (never the secret itself)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--format", required=True, choices=FORMATS, help="the cron service's format")
        parser.add_argument("--url", required=True, help="the service's public base URL, e.g. https://orch.example.com")
        parser.add_argument(
            "--secret-env", default="CRON_SECRET", help="the environment variable holding the bearer secret"
        )
        parser.add_argument(
            "--env-file",
            default=Target.env_file,
            help="crontab and systemd: the file that sets the secret's variable when they tick (default: %(default)s)",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        url = options["url"]
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc or not URL_RE.fullmatch(url):
            raise CommandError(f"--url {url!r}: give the service's base URL, e.g. --url https://orch.example.com")
        if not ENV_NAME_RE.fullmatch(options["secret_env"]):
            raise CommandError(f"--secret-env {options['secret_env']!r}: give a variable name, e.g. CRON_SECRET")
        if not ENV_FILE_RE.fullmatch(options["env_file"]):
            raise CommandError(
                f"--env-file {options['env_file']!r}: give an absolute path without spaces or quotes, "
                "e.g. /etc/orchestrator/cron.env"
            )
        try:
            jobs = cron_jobs().values()
        except RegistryError as exc:
            raise CommandError(f"the cron registry is invalid: {exc}. Fix CRON_JOBS (docs/cron.md)") from exc
        target = Target(base_url=url, secret_env=options["secret_env"], env_file=options["env_file"])
        try:
            text = cron_config(jobs, format=options["format"], target=target)
        except CronConfigError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(text, ending="")
