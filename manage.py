#!/usr/bin/env python
"""Django's command-line utility for administrative tasks."""

from __future__ import annotations

import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")
    try:
        from django.core.management import execute_from_command_line
    except ImportError as exc:
        raise ImportError(
            "Couldn't import Django. Are you sure it's installed and available on your PYTHONPATH environment "
            "variable? Did you forget to activate a virtual environment? `make demo` creates one in .venv: "
            "run `. .venv/bin/activate` first (README, 'A five-minute tour')."
        ) from exc
    import django
    from django.core.exceptions import ImproperlyConfigured

    from core.database import unreachable_database_exits
    from core.errors import squash
    from core.logs import route_command_logs

    command = sys.argv[1] if len(sys.argv) > 1 else "manage.py"
    # A command's stdout is its result: its log lines go to stderr (servers keep stdout).
    route_command_logs(sys.argv)
    try:
        django.setup()
    except ImproperlyConfigured as exc:
        # A setting the apps cannot start with (a TASKS backend that cannot be built, a handler module that
        # cannot be imported) is one line saying so, not a traceback: no command can run until it is fixed.
        print(f"{command}: {squash(str(exc))}", file=sys.stderr)
        raise SystemExit(1) from None
    # A database that cannot be reached is one line saying which and why, not a traceback.
    with unreachable_database_exits(command):
        execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
