"""System checks for the queue: `manage.py check` validates TASKS before a task is enqueued, and the runner's settings.

django_tasks' own check then asks each backend to check itself (OrchestratorBackend.check:
its QUEUES and OPTIONS); this one catches what would stop the backends from being built.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, register
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from django_tasks import DEFAULT_TASK_BACKEND_ALIAS, task_backends
from django_tasks.backends.base import BaseTaskBackend

from core.errors import one_line
from jobs.backend import OrchestratorBackend
from jobs.retry import options_problems

HINT = "See docs/tasks.md, 'Settings'."
MAX_GROUP_JOBS = 64  # the subtransactions PostgreSQL caches per session (jobs.group)
BACKEND = "jobs.backend.OrchestratorBackend"


@register()
def check_tasks_setting(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report a TASKS setting that django_tasks could not build its backends from."""
    tasks = getattr(settings, "TASKS", None)
    if not isinstance(tasks, dict) or DEFAULT_TASK_BACKEND_ALIAS not in tasks:
        return [_error(_shape_problem(tasks), "E001")]
    errors: list[CheckMessage] = [
        _error(problem, "E002") for alias, entry in tasks.items() if (problem := _entry_problem(alias, entry))
    ]
    if not apps.is_installed("django_tasks"):
        errors.append(_error("'django_tasks' is not in INSTALLED_APPS: its checks of each backend do not run", "E003"))
    return errors


@register()
def check_runner_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report group-commit and polling settings the runner cannot work with (docs/jobs.md)."""
    errors: list[CheckMessage] = []
    group = settings.JOBS_GROUP_MAX_JOBS
    if isinstance(group, bool) or not isinstance(group, int) or not 1 <= group <= MAX_GROUP_JOBS:
        errors.append(
            Error(
                f"JOBS_GROUP_MAX_JOBS must be an integer from 1 to {MAX_GROUP_JOBS}, got {group!r}: above "
                f"{MAX_GROUP_JOBS} a group's subtransactions overflow PostgreSQL's per-session cache",
                hint="See docs/jobs.md, 'Group commit'.",
                id="jobs.E004",
            )
        )
    longest_ms = settings.JOBS_LEASE_SECONDS * 1000 / 2
    if not 0 < settings.JOBS_GROUP_MAX_MS <= longest_ms:
        errors.append(
            Error(
                f"JOBS_GROUP_MAX_MS must be more than 0 and at most half of JOBS_LEASE_SECONDS ({longest_ms:g} ms), "
                f"got {settings.JOBS_GROUP_MAX_MS!r}: a group's leases are renewed when it opens",
                hint="See docs/jobs.md, 'Group commit'.",
                id="jobs.E005",
            )
        )
    if not settings.JOBS_POLL_SECONDS > 0:
        errors.append(
            Error(
                f"JOBS_POLL_SECONDS must be more than 0, got {settings.JOBS_POLL_SECONDS!r}",
                hint="See docs/jobs.md, 'Running a worker'.",
                id="jobs.E006",
            )
        )
    return errors


def tasks_problems() -> list[str]:
    """Return why the task backends cannot be built from TASKS, or run with OPTIONS they reject; [] when they can.

    A worker asks before anything builds a backend (django_tasks' own check raises on one it cannot build).
    """
    tasks = getattr(settings, "TASKS", None)
    if not isinstance(tasks, dict) or DEFAULT_TASK_BACKEND_ALIAS not in tasks:
        return [_shape_problem(tasks)]
    problems = [problem for alias, entry in tasks.items() if (problem := _entry_problem(alias, entry))]
    if problems:
        return problems
    for alias in tasks:
        try:
            backend = task_backends[alias]
        except (ImproperlyConfigured, TypeError, ValueError) as exc:  # what a backend's __init__ raises on its params
            problems.append(f"TASKS[{alias!r}] cannot be built: {one_line(exc)}")
            continue
        if isinstance(backend, OrchestratorBackend):
            problems += [f"TASKS[{alias!r}]['OPTIONS'] {problem}" for problem in options_problems(backend.options)]
    return problems


def _shape_problem(tasks: object) -> str:
    return f"TASKS must be a dict with a {DEFAULT_TASK_BACKEND_ALIAS!r} backend; got {tasks!r}"


def _entry_problem(alias: str, entry: Any) -> str:
    """Return why TASKS[alias] cannot be built, or ""."""
    if not isinstance(entry, dict) or not isinstance(entry.get("BACKEND"), str):
        return f"TASKS[{alias!r}] must be a dict with a BACKEND (a dotted path, e.g. {BACKEND!r}); got {entry!r}"
    try:
        backend = import_string(entry["BACKEND"])
    except ImportError as exc:
        return f"TASKS[{alias!r}]['BACKEND'] {entry['BACKEND']!r} cannot be imported: {exc}"
    if not isinstance(backend, type) or not issubclass(backend, BaseTaskBackend):
        return f"TASKS[{alias!r}]['BACKEND'] {entry['BACKEND']!r} is not a task backend class"
    queues = entry.get("QUEUES", [])
    if not isinstance(queues, list | tuple):
        # A string would be read as a set of one-letter queue names.
        return f"TASKS[{alias!r}]['QUEUES'] must be a list of queue names; got {queues!r}"
    return ""


def _error(message: str, code: str) -> Error:
    return Error(message, hint=HINT, id=f"jobs.{code}")
