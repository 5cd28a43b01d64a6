"""Retries under the application's control: a task runs once unless its policy says otherwise (jobs.retry).

The policy comes from the task's @retry_policy, else its backend's OPTIONS, else one
attempt; a @job_handler function keeps the queue's five. A failure no retry can mend (a
return value no row can keep, a task path that cannot be imported) is never retried.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django_tasks import TaskResultStatus
from freezegun import freeze_time

from jobs.models import BackgroundJob
from jobs.retry import retry_policy
from jobs.runner import jobs_run
from jobs.services import job_enqueue
from runs.models import DeadLetter
from testsupport import tasks

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _enqueue_at(now: datetime) -> Iterator[None]:
    with freeze_time(now):
        yield


def at(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


def orchestrator_tasks(**options: Any) -> dict[str, Any]:
    entry = {"BACKEND": "jobs.backend.OrchestratorBackend", "QUEUES": ["default", "emails"], "OPTIONS": options}
    return {"default": entry}


def test_task__runs_once_when_nothing_says_otherwise(now: datetime) -> None:
    result = tasks.value_error.enqueue()

    summary = jobs_run(budget_seconds=30, clock=at(now))

    result.refresh()
    assert (summary.retried, summary.dead) == (0, 1)
    assert (result.status, result.attempts, len(result.errors)) == (TaskResultStatus.FAILED, 1, 1)
    assert BackgroundJob.objects.get().max_attempts == 1
    assert DeadLetter.objects.get().attempts == 1


def test_task__its_backends_options_set_the_default_attempts_and_backoff(now: datetime, settings: Any) -> None:
    settings.TASKS = orchestrator_tasks(MAX_ATTEMPTS=3, RETRY_BASE_SECONDS=100, RETRY_MAX_SECONDS=150)
    result = tasks.value_error.enqueue()

    jobs_run(budget_seconds=30, clock=at(now))
    first = BackgroundJob.objects.get()
    jobs_run(budget_seconds=30, clock=at(first.run_after))
    second = BackgroundJob.objects.get()

    result.refresh()
    assert (result.status, result.attempts, second.max_attempts) == (TaskResultStatus.READY, 2, 3)
    # 100 s after the first failure, then 200 s capped at 150 s, each plus up to 25 % jitter.
    assert timedelta(seconds=100) <= first.run_after - now <= timedelta(seconds=125)
    assert timedelta(seconds=150) <= second.run_after - first.run_after <= timedelta(seconds=187.5)
    jobs_run(budget_seconds=30, clock=at(second.run_after))
    result.refresh()
    assert (result.status, result.attempts) == (TaskResultStatus.FAILED, 3)


def test_task__its_retry_policy_overrides_its_backends_options(now: datetime, settings: Any) -> None:
    settings.TASKS = orchestrator_tasks(MAX_ATTEMPTS=2, RETRY_BASE_SECONDS=100)
    result = tasks.value_error_retried.enqueue()  # @retry_policy(max_attempts=5, retry_base_seconds=2, ...)

    jobs_run(budget_seconds=30, clock=at(now))

    job = BackgroundJob.objects.get()
    result.refresh()
    assert (result.status, job.max_attempts) == (TaskResultStatus.READY, 5)
    assert timedelta(seconds=2) <= job.run_after - now <= timedelta(seconds=2.5)


def test_job_handler__keeps_the_queues_own_five_attempts_and_backoff(now: datetime, settings: Any) -> None:
    settings.TASKS = orchestrator_tasks(MAX_ATTEMPTS=1, RETRY_BASE_SECONDS=100)
    settings.JOBS_RETRY_BASE_SECONDS = 7
    job = job_enqueue(kind="test.fail", payload={}, now=now).job

    jobs_run(budget_seconds=30, clock=at(now))

    job.refresh_from_db()
    assert (job.status, job.max_attempts) == ("pending", 5)
    assert timedelta(seconds=7) <= job.run_after - now <= timedelta(seconds=8.75)


def test_enqueue__an_explicit_max_attempts_wins_over_the_kinds_policy(now: datetime) -> None:
    task_job = job_enqueue(kind="testsupport.tasks.value_error", payload={}, max_attempts=4, now=now).job
    default_job = job_enqueue(kind="testsupport.tasks.value_error", payload={}, now=now).job

    assert (task_job.max_attempts, default_job.max_attempts) == (4, 1)


def test_enqueue_over_http__a_tasks_kind_gets_its_policy_unless_the_body_says(client: Any, settings: Any) -> None:
    settings.JOBS_API_TOKEN = "t"

    def post(body: dict[str, Any]) -> dict[str, Any]:
        response = client.post(
            "/api/jobs", body, content_type="application/json", headers={"Authorization": "Bearer t"}
        )
        assert response.status_code == 201, response.content
        answer: dict[str, Any] = response.json()
        return answer

    assert post({"kind": "testsupport.tasks.noop"})["maxAttempts"] == 1
    assert post({"kind": "testsupport.tasks.value_error_retried"})["maxAttempts"] == 5
    assert post({"kind": "testsupport.tasks.noop", "maxAttempts": 3})["maxAttempts"] == 3
    assert post({"kind": "test.fail"})["maxAttempts"] == 5


def test_unknown_task_path__fails_with_import_error_and_is_never_retried(make_job: Any, now: datetime) -> None:
    # A task removed by a deploy (or a worker running older code) while its jobs still wait.
    job = make_job(kind="myapp.retired.send_welcome", payload={"args": [], "kwargs": {}}, max_attempts=3)

    jobs_run(budget_seconds=30, clock=at(now))

    job.refresh_from_db()
    [error] = job.errors
    assert (job.status, job.attempts, error["exception_class_path"]) == ("dead", 1, "builtins.ImportError")
    assert job.last_error == (
        "ImportError: no handler for kind 'myapp.retired.send_welcome': as a task's module path, it cannot be "
        "imported (No module named 'myapp') (docs/tasks.md)"
    )


def test_unknown_short_kind__is_still_retried(make_job: Any, now: datetime) -> None:
    # A @job_handler kind is no module path: its handler may come back with the next deploy.
    job = make_job(kind="retired", max_attempts=3)

    jobs_run(budget_seconds=30, clock=at(now))

    job.refresh_from_db()
    assert (job.status, job.errors[0]["exception_class_path"]) == ("pending", "builtins.LookupError")


@pytest.mark.parametrize(
    ("decorate", "message"),
    [
        (lambda: retry_policy(max_attempts=0), "max attempts must be an integer from 1 to 100, got 0"),
        (lambda: retry_policy(max_attempts=True), "got True"),
        (lambda: retry_policy(retry_base_seconds=float("nan")), "a backoff must be a number of seconds"),
        (lambda: retry_policy(retry_max_seconds=-1), "a backoff must be a number of seconds, 0 or more, got -1"),
    ],
)
def test_retry_policy__refuses_a_bad_value_at_import(decorate: Callable[[], Any], message: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=message):
        decorate()


def test_retry_policy__goes_above_task() -> None:
    def send() -> None:
        pass

    with pytest.raises(ImproperlyConfigured, match="@retry_policy goes above @task"):
        retry_policy(max_attempts=3)(send)  # type: ignore[arg-type]
