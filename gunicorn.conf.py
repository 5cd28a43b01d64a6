"""gunicorn's settings for the web process (the Procfile's `web`): JSON log lines, and metrics its workers share.

gunicorn reads this file from the directory it starts in. The app logs through settings.LOGGING
on stdout; gunicorn's lines ("Booting worker", "Worker exiting", a worker's timeout) join them
there, one JSON object per line, with the same fields (docs/operations.md, "Logs"). A logging
configuration turns gunicorn's access log on: one `gunicorn.access` INFO line per request.

Each worker counts its events (ticks, publishes, jobs) in files under PROMETHEUS_MULTIPROC_DIR,
and `/metrics`, whichever worker answers it, adds them all up (docs/operations.md, "Metrics"):
when the variable is unset, the server makes a fresh directory for its own workers, set before
any worker imports prometheus-client, and removes it when it exits.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from core.logs import json_formatter

METRICS_DIR = "PROMETHEUS_MULTIPROC_DIR"
_made_dir = "" if os.environ.get(METRICS_DIR) else tempfile.mkdtemp(prefix="orchestrator-metrics-")
if _made_dir:
    os.environ[METRICS_DIR] = _made_dir


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
