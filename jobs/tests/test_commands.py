from __future__ import annotations

import json
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from jobs.models import BackgroundJob
from testsupport import procs

pytestmark = pytest.mark.django_db


def test_enqueue_job__enqueues_and_prints_the_id() -> None:
    out = StringIO()

    call_command(
        "enqueue_job", "demo.echo", "--payload", '{"kwargs": {"message": "hi"}}', "--tenant", "acme", stdout=out
    )

    job = BackgroundJob.objects.get()
    assert out.getvalue().strip() == f"enqueued job {job.pk} (demo.echo)"
    assert (job.payload, job.tenant) == ({"kwargs": {"message": "hi"}}, "acme")


def test_enqueue_job__count() -> None:
    out, err = StringIO(), StringIO()

    call_command("enqueue_job", "demo.echo", "--count", "5", stdout=out, stderr=err)

    assert BackgroundJob.objects.count() == 5
    assert out.getvalue() == "enqueued 5 demo.echo jobs\n"
    assert err.getvalue() == ""  # a small count shows no progress


def test_enqueue_job__a_large_count_shows_progress_on_stderr() -> None:
    out, err = StringIO(), StringIO()

    call_command("enqueue_job", "demo.noop", "--count", "2500", stdout=out, stderr=err)

    assert BackgroundJob.objects.count() == 2500
    assert out.getvalue() == "enqueued 2,500 demo.noop jobs\n"
    assert err.getvalue().splitlines() == [
        "enqueued 1,000 of 2,500 jobs",
        "enqueued 2,000 of 2,500 jobs",
        "enqueued 2,500 of 2,500 jobs",
    ]


def test_enqueue_job__count_with_a_dedupe_key_reports_the_deduplicated_ones() -> None:
    out = StringIO()

    call_command("enqueue_job", "demo.echo", "--count", "3", "--dedupe-key", "k", stdout=out)

    job = BackgroundJob.objects.get()
    assert out.getvalue() == f"enqueued 1 demo.echo job; 2 deduplicated onto live job {job.pk}\n"


def test_enqueue_job__one_deduplicated_job_says_so() -> None:
    call_command("enqueue_job", "demo.echo", "--dedupe-key", "k", stdout=StringIO())
    out = StringIO()

    call_command("enqueue_job", "demo.echo", "--dedupe-key", "k", stdout=out)

    job = BackgroundJob.objects.get()
    assert out.getvalue() == f"deduplicated onto live job {job.pk} (demo.echo): nothing enqueued\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "unknown job kind 'nope'"),
        (["demo.echo", "--payload", "{bad"], "--payload is not JSON"),
        (["demo.echo", "--run-after", "soon"], "--run-after: 'soon' is not an ISO-8601 date-time"),
        (["demo.echo", "--max-attempts", "0"], "--max-attempts: must be an integer from 1 to 100"),
        (["demo.echo", "--priority", "101"], "--priority: must be an integer from -100 to 100"),
        (["demo.echo", "--dedupe-key", " \t"], "--dedupe-key: must be printable text of 1 to 200 characters"),
        (["demo.echo", "--tenant", "a:b"], "--tenant: must be empty or match"),
        (["demo.echo", "--payload", "[1]"], "--payload: "),
        (["demo.echo", "--count", "0"], "--count must be a whole number of at least 1, got 0"),
    ],
)
def test_enqueue_job__bad_arguments_say_what_to_type(args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message.replace("(", r"\(")):
        call_command("enqueue_job", *args)
    assert not BackgroundJob.objects.exists()


def test_run_jobs__drains_and_prints_the_summary() -> None:
    call_command("enqueue_job", "demo.echo", "--count", "3", stdout=StringIO())
    out = StringIO()

    call_command("run_jobs", "--budget", "30", stdout=out)

    summary = json.loads(out.getvalue())
    assert (summary["claimed"], summary["succeeded"], summary["remainingBacklog"]) == (3, 3, 0)


def test_run_jobs__refuses_a_bad_concurrency() -> None:
    with pytest.raises(CommandError, match="^--concurrency must be a whole number from 1 to 64, got 0$"):
        call_command("run_jobs", "--concurrency", "0")


@pytest.mark.parametrize("size", ["-1", "0", "10001"])
def test_run_jobs__refuses_a_batch_size_out_of_range_naming_the_flag(make_job: Any, size: str) -> None:
    job = make_job(kind="test.record")

    with pytest.raises(CommandError, match=rf"^--batch-size must be a whole number from 1 to 10,000, got {size}$"):
        call_command("run_jobs", "--batch-size", size)

    job.refresh_from_db()
    assert job.status == "pending"  # refused before anything was claimed


@pytest.mark.parametrize("budget", ["0", "-1", "31"])
def test_run_jobs__refuses_a_budget_that_is_not_safely_below_the_lease(settings: Any, budget: str) -> None:
    settings.JOBS_LEASE_SECONDS = 60
    call_command("enqueue_job", "demo.echo", stdout=StringIO())

    with pytest.raises(
        CommandError, match=r"--budget must be more than 0 and at most 30 s \(half of JOBS_LEASE_SECONDS=60\)"
    ):
        call_command("run_jobs", "--budget", budget)
    assert BackgroundJob.objects.get().status == "pending"


BAD_TASKS = {
    # A second backend whose path does not import: django_tasks' own check would raise on it.
    "emails": (
        '{**TASKS, "emails": {"BACKEND": "no_such_module.Backend"}}',
        "CommandError: TASKS['emails']['BACKEND'] 'no_such_module.Backend' cannot be imported: No module named "
        "'no_such_module'. Fix TASKS (docs/tasks.md, 'Settings')",
    ),
    "options": (
        '{"default": {**TASKS["default"], "OPTIONS": "MAX_ATTEMPTS=3"}}',
        "CommandError: TASKS['default']['OPTIONS'] must be a dict of options (MAX_ATTEMPTS, RETRY_BASE_SECONDS, "
        "RETRY_MAX_SECONDS), got 'MAX_ATTEMPTS=3'. Fix TASKS (docs/tasks.md, 'Settings')",
    ),
    # The default backend: every @task of JOB_HANDLER_MODULES builds it as the apps start.
    "default": (
        '{"default": {"BACKEND": "no_such_module.Backend"}}',
        "run_jobs: TASKS['default'] cannot be built: InvalidTaskBackendError: Could not find backend "
        "'no_such_module.Backend': No module named 'no_such_module'. Fix TASKS (docs/tasks.md, 'Settings')",
    ),
    "queues": (
        '{"default": {**TASKS["default"], "QUEUES": 5}}',
        "run_jobs: TASKS['default'] cannot be built: TypeError: 'int' object is not iterable. Fix TASKS "
        "(docs/tasks.md, 'Settings')",
    ),
}


def test_run_jobs__a_tasks_backend_it_cannot_build_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    children = {}
    for name, (tasks, _) in BAD_TASKS.items():
        (tmp_path / f"bad_tasks_{name}.py").write_text(f"from testsupport.settings import *  # noqa\nTASKS = {tasks}\n")
        env = procs.child_env(DJANGO_SETTINGS_MODULE=f"bad_tasks_{name}", PYTHONPATH=f"{tmp_path}:{procs.ROOT}")
        children[name] = procs.manage("run_jobs", "--budget", "1", env=env)

    for name, child in children.items():
        out, err = child.communicate(timeout=120)
        assert (child.returncode, out, err.splitlines()) == (1, "", [BAD_TASKS[name][1]]), name
