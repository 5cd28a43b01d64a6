"""System checks for the queue: `manage.py check` validates TASKS before a task is enqueued.

django_tasks' own check then asks each backend to check itself (OrchestratorBackend.check:
its QUEUES and OPTIONS); this one catches what would stop the backends from being built.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, register
from django.utils.module_loading import import_string
from django_tasks import DEFAULT_TASK_BACKEND_ALIAS
from django_tasks.backends.base import BaseTaskBackend

HINT = "See docs/tasks.md, 'Settings'."
BACKEND = "jobs.backend.OrchestratorBackend"


@register()
def check_tasks_setting(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Report a TASKS setting that django_tasks could not build its backends from."""
    tasks = getattr(settings, "TASKS", None)
    if not isinstance(tasks, dict) or DEFAULT_TASK_BACKEND_ALIAS not in tasks:
        return [_error(f"TASKS must be a dict with a {DEFAULT_TASK_BACKEND_ALIAS!r} backend; got {tasks!r}", "E001")]
    errors: list[CheckMessage] = [
        _error(problem, "E002") for alias, entry in tasks.items() if (problem := _entry_problem(alias, entry))
    ]
    if not apps.is_installed("django_tasks"):
        errors.append(_error("'django_tasks' is not in INSTALLED_APPS: its checks of each backend do not run", "E003"))
    return errors


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
