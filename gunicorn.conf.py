"""gunicorn's settings for the web process (the Procfile's `web`): JSON log lines, and metrics its workers share.

gunicorn reads this file from the directory it starts in. The app logs through settings.LOGGING
on stdout; gunicorn's lines ("Booting worker", "Worker exiting", a worker's timeout) join them
there, one JSON object per line, with the same fields (docs/operations.md, "Logs"). A logging
configuration turns gunicorn's access log on: one `gunicorn.access` INFO line per request.

Each worker counts its events (ticks, publishes, jobs) in files under PROMETHEUS_MULTIPROC_DIR,
and `/metrics`, whichever worker answers it, adds them all up (docs/operations.md, "Metrics"):
when the variable is unset, the server makes a fresh directory for its own workers, set before
any worker imports prometheus-client, keeps it over reloads (SIGHUP: the old workers' counts
stay, counted once), and removes it when it exits.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from core.logs import json_formatter

METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"
# gunicorn reads this file again on a reload (SIGHUP): the variable it set the first time is then set, and this
# one says the directory is still the server's own to remove when it exits.
MADE_DIR = "ORCHESTRATOR_GUNICORN_METRICS_DIR"
if not os.environ.get(METRICS_DIR):
    os.environ[METRICS_DIR] = os.environ[MADE_DIR] = tempfile.mkdtemp(prefix="orchestrator-metrics-")
_made_dir = os.environ[METRICS_DIR] if os.environ.get(MADE_DIR) == os.environ[METRICS_DIR] else ""


def child_exit(server: Any, worker: Any) -> None:
    """Let the metrics of a worker that exited be summed, no longer read as live."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]


def on_exit(server: Any) -> None:
    """Remove the metrics directory this server made for itself (one set from outside is left as it is)."""
    if _made_dir:
        shutil.rmtree(_made_dir, ignore_errors=True)


logconfig_dict = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": json_formatter()},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}},
    "root": {"level": "INFO", "handlers": ["console"]},
    "loggers": {
        name: {"level": "INFO", "handlers": ["console"], "propagate": False, "qualname": name}
        for name in ("gunicorn.error", "gunicorn.access")
    },
}
