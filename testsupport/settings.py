"""Settings for the test suite: the real PostgreSQL and Redis of this machine.

DATABASE_URL and REDIS_URL override the defaults below (each test run then uses
the database `test_<name>` that pytest-django creates, and flushes its Redis db).
"""

from __future__ import annotations

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/orchestrator")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")

from orchestrator.settings import *  # noqa: E402,F403
from orchestrator.settings import CRON_JOBS, INSTALLED_APPS, JOB_HANDLER_MODULES, TASKS  # noqa: E402

INSTALLED_APPS = [*INSTALLED_APPS, "testsupport"]
JOB_HANDLER_MODULES = [*JOB_HANDLER_MODULES, "testsupport.handlers", "testsupport.unruly"]
# testsupport.tasks is not listed: a worker finds a task by its module path (jobs.registry.resolve_handler).
TASKS = {"default": {**TASKS["default"], "QUEUES": ["default", "emails"]}}
CRON_JOBS = [
    *CRON_JOBS,
    {
        "name": "counter",
        "window_seconds": 300,
        "callable": "testsupport.crons.count_run",
        "params": {
            "tenant": {"type": "str"},
            "limit": {"type": "int"},
            "dry": {"type": "bool"},
            "region": {"type": "str", "choices": ["eu", "us"]},
        },
    },
    {"name": "crash", "window_seconds": 60, "callable": "testsupport.crons.crash"},
    {"name": "flaky", "window_seconds": 60, "callable": "testsupport.crons.fail_first_attempt"},
    # For scenarios through a live server whose ticks, seconds apart in real time, must share a window.
    {"name": "daily", "window_seconds": 86400, "callable": "testsupport.crons.count_run"},
    # A run that stops making progress until its process is killed (a requeue's manual run goes through).
    {"name": "stall", "window_seconds": 60, "callable": "testsupport.crons.stall"},
]
# Tests run with DEBUG=False (Django's test environment forces it), where the cron
# view refuses to dispatch while a deploy check fails: the development key is one.
SECRET_KEY = "test-settings-secret-key-not-the-development-default"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# "full" runs the reliability scenarios at the full counts (testsupport.stress).
ORCHESTRATOR_STRESS = os.environ.get("ORCHESTRATOR_STRESS", "")
