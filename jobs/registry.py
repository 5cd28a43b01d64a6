"""The one registry of what runs a job's kind: Django Tasks and @job_handler functions.

A task defined on an Orchestrator backend (`@task` with `TASKS` naming
`jobs.backend.OrchestratorBackend`) registers itself under its module path
(`myapp.tasks.send_welcome`) when it is defined. `@job_handler("kind")` is the older
spelling: over a plain function it registers a handler called with a JobContext; over a
`@task` it names the kind the task's jobs are enqueued under (the demo tasks keep
`demo.echo` so). `@autocommit` marks a task or handler whose jobs run outside the group
transaction. Modules listed in JOB_HANDLER_MODULES are imported at start-up; the
runner also imports a task it does not know yet by its module path (docs/tasks.md).
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from dataclasses import dataclass
from importlib import import_module
from typing import TYPE_CHECKING, Any, TypeVar

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from django_tasks import DEFAULT_TASK_BACKEND_ALIAS, task_backends
from django_tasks.base import Task
from django_tasks.exceptions import InvalidTaskBackendError, InvalidTaskError

from core.errors import one_line
from jobs.exceptions import not_retriable
from jobs.taskcall import TaskHandler

if TYPE_CHECKING:
    from jobs.context import JobContext

Handler = Callable[["JobContext"], Any]
Registrable = TypeVar("Registrable", bound=Callable[..., Any] | Task[Any, Any])
# A kind is a short name or a task's module path. Nothing that builds a key from a kind
# (status blobs, metric labels) may meet ':', '*', whitespace or more than 100 characters.
KIND_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,99}")
MODULE_PATH_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+")

_handlers: dict[str, Handler] = {}
# A task function -> the kind its jobs are enqueued under, when @job_handler named one.
_task_kinds: dict[Callable[..., Any], str] = {}
# The functions (of a task, or a handler's) whose jobs run in autocommit, by id: a handler need not be hashable.
_autocommit: dict[int, Callable[..., Any]] = {}


def job_handler(kind: str) -> Callable[[Registrable], Registrable]:
    """Register the decorated function as the handler of jobs of `kind`, or name a task's kind.

    Over a function, jobs of `kind` call it with a JobContext. Over a `@task` (applied
    after it), `.enqueue()` writes jobs of `kind`, and jobs of `kind` run the task.
    """
    if not KIND_RE.fullmatch(kind):
        raise ImproperlyConfigured(f"job kind {kind!r} must match {KIND_RE.pattern}")

    def register(target: Registrable) -> Registrable:
        if isinstance(target, Task):
            _register(kind, TaskHandler(target))
            _task_kinds[target.func] = kind
        elif _never_runs(target):
            # Called, it would return a coroutine or a generator without running its body: every job would fail.
            raise ImproperlyConfigured(
                f"job handler {target.__qualname__!r} of kind {kind!r} is an async function or a generator, which a "
                "handler's call would not run: make it a plain function, or an async @task (docs/tasks.md)"
            )
        else:
            _register(kind, target)
        return target

    return register


def autocommit(target: Registrable) -> Registrable:
    """Run the jobs of the decorated `@task` or `@job_handler` function outside the group transaction, in autocommit.

    Either side of the other decorator. Each statement of such a job commits as it
    runs, so `transaction.atomic(durable=True)` works there (docs/jobs.md, "A job of
    its own: autocommit").
    """
    func = target.func if isinstance(target, Task) else target
    _autocommit[id(func)] = func
    return target


def task_register(task: Task[Any, Any]) -> None:
    """Register `task` under its module path (its backend calls this when the task is defined or copied)."""
    existing = _handlers.get(task.module_path)
    if isinstance(existing, TaskHandler) and existing.task.func is task.func:
        return  # A copy made by .using(): the task as defined stays registered.
    _register(task.module_path, TaskHandler(task), replace_task=True)


def task_kind(task: Task[Any, Any]) -> str:
    """Return the kind `task`'s jobs are enqueued under: the name @job_handler gave it, else its module path."""
    return _task_kinds.get(task.func, task.module_path)


def get_handler(kind: str) -> Handler | None:
    """Return what runs jobs of `kind` in this process (a handler or a TaskHandler), or None."""
    return _handlers.get(kind)


def find_handler(kind: str) -> Handler | None:
    """Return what runs jobs of `kind`, importing a task by its module path if this process has not yet; or None.

    For kinds already accepted at enqueue (a result lookup, a requeue): a process need
    not list every task module in JOB_HANDLER_MODULES.
    """
    handler = _handlers.get(kind)
    if handler is None and MODULE_PATH_RE.fullmatch(kind):
        _imported_task(kind)
        handler = _handlers.get(kind)
    return handler


def resolve_handler(kind: str) -> Handler | None:
    """Return what the runner calls for a job of `kind`: find_handler's answer, or None.

    A task's module path this process cannot import as a task (a task removed or renamed
    by a deploy, a worker running other code than the web) resolves to a handler that
    fails the job with ImportError, saying why; no retry can mend that, so none is made.
    """
    handler = _handlers.get(kind)
    if handler is None and MODULE_PATH_RE.fullmatch(kind):
        found = _imported_task(kind)
        handler = _handlers.get(kind) or UnimportableTask(
            kind=kind,
            reason=found if isinstance(found, str) else f"names a task whose backend {found.backend!r} runs no jobs",
        )
    return handler


@dataclass(frozen=True)
class UnimportableTask:
    """The runner's handler for jobs of a task path that cannot be imported as a task here."""

    kind: str
    reason: str

    def __call__(self, ctx: JobContext) -> Any:
        raise not_retriable(
            ImportError(f"no handler for kind {self.kind!r}: as a task's module path, it {self.reason} (docs/tasks.md)")
        )


def _imported_task(path: str) -> Task[Any, Any] | str:
    """Import the task at `path` and validate it on its backend (which registers it); return it, or why not."""
    try:
        found = import_string(path)
    except ImportError as exc:
        return f"cannot be imported ({exc})"
    if not isinstance(found, Task) or found.module_path != path:
        return f"imports {type(found).__name__} {found!r}, not a task"
    try:
        found.get_backend().validate_task(found)  # An Orchestrator backend registers the task it validates.
    except (InvalidTaskError, InvalidTaskBackendError) as exc:
        return f"names a task its backend refuses ({exc})"
    return found


def runs_in_autocommit(kind: str) -> bool:
    """Return whether jobs of `kind` run outside the group transaction, in autocommit (@autocommit)."""
    handler = _handlers.get(kind)
    return id(handler.task.func if isinstance(handler, TaskHandler) else handler) in _autocommit


def registered_kinds() -> list[str]:
    """Return every kind to enqueue under, sorted: a task that @job_handler named is listed under that name only.

    (Its module path still runs it: the registry keeps both.)
    """
    return sorted(
        kind
        for kind, handler in _handlers.items()
        if not (isinstance(handler, TaskHandler) and task_kind(handler.task) != kind)
    )


def load_handler_modules() -> None:
    """Import every module in settings.JOB_HANDLER_MODULES so its handlers and tasks register."""
    try:
        task_backends[DEFAULT_TASK_BACKEND_ALIAS]  # what @task builds as a module declares its tasks
    except (ImproperlyConfigured, TypeError, ValueError) as exc:  # a backend's __init__ refusing its params
        raise ImproperlyConfigured(
            f"TASKS[{DEFAULT_TASK_BACKEND_ALIAS!r}] cannot be built: {one_line(exc)}. Fix TASKS (docs/tasks.md, "
            "'Settings')"
        ) from exc
    for path in settings.JOB_HANDLER_MODULES:
        try:
            import_module(path)
        except InvalidTaskBackendError as exc:  # its @task functions build their backend as they are declared
            raise ImproperlyConfigured(
                f"JOB_HANDLER_MODULES lists {path!r}, whose tasks need a backend TASKS cannot give: {exc}. "
                "Fix TASKS (docs/tasks.md, 'Settings')"
            ) from exc
        except ImportError as exc:
            raise ImproperlyConfigured(f"JOB_HANDLER_MODULES lists {path!r}, which cannot be imported: {exc}") from exc


def _register(kind: str, handler: Handler, *, replace_task: bool = False) -> None:
    existing = _handlers.get(kind)
    if existing is not None and existing != handler:
        # A module imported again (a reload) defines its task anew: the new one wins.
        reloaded = replace_task and isinstance(existing, TaskHandler)
        if not reloaded:
            raise ImproperlyConfigured(f"job kind {kind!r} is registered twice: {_name(existing)} and {_name(handler)}")
    _handlers[kind] = handler


def _never_runs(function: Callable[..., Any]) -> bool:
    """Return whether calling `function` returns a coroutine or a generator instead of running its body."""
    checks = (inspect.iscoroutinefunction, inspect.isgeneratorfunction, inspect.isasyncgenfunction)
    return any(check(function) for check in checks)


def _name(handler: Handler) -> str:
    if isinstance(handler, TaskHandler):
        return f"the task {handler.task.module_path}"
    return f"{handler.__module__}.{getattr(handler, '__qualname__', handler)}"
