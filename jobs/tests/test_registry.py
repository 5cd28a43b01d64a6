"""One registry for tasks and @job_handler functions; kinds that stay safe wherever a key is built from them."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django_tasks import task_backends
from hypothesis import given
from hypothesis import strategies as st

from jobs import demo, registry
from jobs.checks import check_runner_settings, check_tasks_setting
from jobs.registry import KIND_RE, autocommit, find_handler, get_handler, job_handler, runs_in_autocommit, task_kind
from jobs.taskcall import TaskHandler
from runs.status import status_key
from testsupport import tasks


@pytest.fixture
def scratch_registry() -> Iterator[None]:
    """Let a test register kinds without leaving them behind."""
    handlers, kinds, marked = dict(registry._handlers), dict(registry._task_kinds), dict(registry._autocommit)
    yield
    registry._handlers.clear()
    registry._handlers.update(handlers)
    registry._task_kinds.clear()
    registry._task_kinds.update(kinds)
    registry._autocommit.clear()
    registry._autocommit.update(marked)


def test_registry__tasks_and_handlers_share_it() -> None:
    assert isinstance(get_handler("testsupport.tasks.noop"), TaskHandler)
    assert get_handler("testsupport.tasks.noop").task is tasks.noop  # type: ignore[union-attr]
    assert get_handler("demo.echo") == get_handler("jobs.demo.echo") == TaskHandler(demo.echo)
    assert (task_kind(demo.echo), task_kind(tasks.noop)) == ("demo.echo", "testsupport.tasks.noop")
    assert callable(get_handler("test.record")) and not isinstance(get_handler("test.record"), TaskHandler)


def test_registry__a_copy_made_by_using_leaves_the_task_as_defined() -> None:
    tasks.noop.using(priority=9)

    assert get_handler("testsupport.tasks.noop").task.priority == 0  # type: ignore[union-attr]


def test_registry__a_kind_taken_by_something_else_is_refused(scratch_registry: None) -> None:
    with pytest.raises(ImproperlyConfigured, match="job kind 'testsupport.tasks.noop' is registered twice"):
        job_handler("testsupport.tasks.noop")(lambda ctx: None)
    with pytest.raises(ImproperlyConfigured, match="job kind 'demo.echo' is registered twice"):
        job_handler("demo.echo")(tasks.noop)


def test_job_handler__an_async_or_generator_function_is_refused_saying_what_to_write(scratch_registry: None) -> None:
    async def coroutine(ctx: Any) -> None:
        return None

    def generator(ctx: Any) -> Iterator[int]:
        yield 1

    async def async_generator(ctx: Any) -> Any:
        yield 1

    for function in (coroutine, generator, async_generator):
        with pytest.raises(ImproperlyConfigured, match="an async function or a generator") as refused:
            job_handler("test.scratch_not_called")(function)
        assert f"{function.__qualname__!r}" in str(refused.value)
        assert "an async @task" in str(refused.value)
    assert get_handler("test.scratch_not_called") is None


def test_autocommit__marks_a_task_or_a_handler_on_either_side_of_its_decorator(scratch_registry: None) -> None:
    @job_handler("test.scratch_marked_below")
    @autocommit
    def below(ctx: Any) -> None: ...

    @autocommit
    @job_handler("test.scratch_marked_above")
    def above(ctx: Any) -> None: ...

    marked = ["testsupport.tasks.autocommit_writes", "test.scratch_marked_below", "test.scratch_marked_above"]
    assert [runs_in_autocommit(kind) for kind in marked] == [True, True, True]
    unmarked = ["testsupport.tasks.noop", "demo.echo", "test.record", "no.such.kind"]
    assert [runs_in_autocommit(kind) for kind in unmarked] == [False, False, False, False]


def test_find_handler__imports_a_task_by_its_module_path_and_nothing_else(scratch_registry: None) -> None:
    del registry._handlers["testsupport.tasks.meaning_of_life"]

    assert get_handler("testsupport.tasks.meaning_of_life") is None
    assert find_handler("testsupport.tasks.meaning_of_life") == TaskHandler(tasks.meaning_of_life)
    assert find_handler("testsupport.tasks.not_a_task") is None
    assert find_handler("os.system") is None
    assert find_handler("no.such.module") is None
    assert find_handler("test.record") is get_handler("test.record")


@pytest.mark.parametrize(
    "kind", ["myapp.tasks.send_welcome", "Billing.Tasks.Charge_Card", "_private.task", "demo.echo"]
)
def test_kind__module_paths_are_kinds(kind: str) -> None:
    assert KIND_RE.fullmatch(kind)


@pytest.mark.parametrize("kind", ["", "a:b", "a b", "a*", "x" * 101, "é.task", ".leading"])
def test_kind__what_could_escape_a_key_is_not_a_kind(kind: str) -> None:
    assert not KIND_RE.fullmatch(kind)


@given(kind=st.from_regex(KIND_RE, fullmatch=True))
def test_kind__every_kind_is_a_safe_status_blob_name(kind: str) -> None:
    assert status_key("global", kind) == f"job:v1:global:{kind}"


def test_checks__the_shipped_tasks_setting_passes() -> None:
    assert check_tasks_setting() == []
    assert [message for backend in task_backends.all() for message in backend.check()] == []


@pytest.mark.parametrize(
    ("tasks_setting", "code", "message"),
    [
        ({}, "jobs.E001", "TASKS must be a dict with a 'default' backend"),
        ({"default": {"QUEUES": ["default"]}}, "jobs.E002", "TASKS['default'] must be a dict with a BACKEND"),
        ({"default": {"BACKEND": "jobs.models.BackgroundJob"}}, "jobs.E002", "is not a task backend class"),
        (
            {"default": {"BACKEND": "jobs.backend.OrchestratorBackend", "QUEUES": "default"}},
            "jobs.E002",
            "TASKS['default']['QUEUES'] must be a list of queue names; got 'default'",
        ),
    ],
)
def test_checks__a_tasks_setting_the_backends_cannot_be_built_from(
    settings: Any, tasks_setting: dict[str, Any], code: str, message: str
) -> None:
    settings.TASKS = tasks_setting

    [error] = check_tasks_setting()

    assert (error.id, error.hint) == (code, "See docs/tasks.md, 'Settings'.")
    assert message in error.msg


@pytest.mark.parametrize(
    ("entry", "code", "message"),
    [
        ({"QUEUES": ["default", "no room"]}, "jobs.E010", "must be a list of queue names matching"),
        (
            {"QUEUES": ["default"], "OPTIONS": {"id_function": "uuid.uuid4"}},
            "jobs.E011",
            "'id_function' is not an option (known: MAX_ATTEMPTS, RETRY_BASE_SECONDS, RETRY_MAX_SECONDS)",
        ),
        ({"OPTIONS": {"MAX_ATTEMPTS": 0}}, "jobs.E011", "MAX_ATTEMPTS: max attempts must be an integer from 1 to 100"),
        ({"OPTIONS": {"MAX_ATTEMPTS": "3"}}, "jobs.E011", "got '3'"),
        ({"OPTIONS": {"RETRY_BASE_SECONDS": -1}}, "jobs.E011", "RETRY_BASE_SECONDS: a backoff must be a number"),
        ({"OPTIONS": "MAX_ATTEMPTS=3"}, "jobs.E011", "must be a dict of options"),  # not a traceback from the check
    ],
)
def test_checks__manage_py_check_refuses_a_bad_orchestrator_backend(
    settings: Any, entry: dict[str, Any], code: str, message: str
) -> None:
    settings.TASKS = {"default": {"BACKEND": "jobs.backend.OrchestratorBackend", **entry}}

    with pytest.raises(SystemCheckError, match=code) as caught:
        call_command("check")

    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("setting", "value", "check_id", "message"),
    [
        ("JOBS_GROUP_MAX_JOBS", 0, "jobs.E004", "JOBS_GROUP_MAX_JOBS must be an integer from 1 to 64, got 0"),
        ("JOBS_GROUP_MAX_JOBS", 65, "jobs.E004", "JOBS_GROUP_MAX_JOBS must be an integer from 1 to 64, got 65"),
        ("JOBS_GROUP_MAX_MS", 0.0, "jobs.E005", "JOBS_GROUP_MAX_MS must be more than 0 and at most half"),
        ("JOBS_GROUP_MAX_MS", 30_001.0, "jobs.E005", "JOBS_GROUP_MAX_MS must be more than 0 and at most half"),
        ("JOBS_POLL_SECONDS", 0.0, "jobs.E006", "JOBS_POLL_SECONDS must be more than 0, got 0.0"),
    ],
)
def test_check_runner_settings__refuses_what_the_runner_cannot_work_with(
    settings: Any, setting: str, value: object, check_id: str, message: str
) -> None:
    assert check_runner_settings() == []
    setattr(settings, setting, value)

    [error] = check_runner_settings()

    assert (error.id, error.msg.startswith(message)) == (check_id, True)
