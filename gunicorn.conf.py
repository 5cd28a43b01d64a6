"""gunicorn's settings for the web process (the Procfile's `web`): its own log lines are JSON, like the app's.

gunicorn reads this file from the directory it starts in. The app logs through settings.LOGGING
on stdout; gunicorn's lines ("Booting worker", "Worker exiting", a worker's timeout) join them
there, one JSON object per line, with the same fields (docs/operations.md, "Logs"). A logging
configuration turns gunicorn's access log on: one `gunicorn.access` INFO line per request.
"""

from __future__ import annotations

from core.logs import json_formatter

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
