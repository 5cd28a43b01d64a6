"""WSGI entry point, served by gunicorn (see Procfile)."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "orchestrator.settings")

application = get_wsgi_application()

# gunicorn runs no system check: say at start-up which variables settings could not read, and what stands in.
from orchestrator.environment_checks import unreadable_variables_log  # noqa: E402  (Django is set up now)

unreadable_variables_log()
