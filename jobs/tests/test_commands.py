from __future__ import annotations

import json
from io import StringIO
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from jobs.models import BackgroundJob

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
    out = StringIO()

    call_command("enqueue_job", "demo.echo", "--count", "5", stdout=out)

    assert BackgroundJob.objects.count() == 5
    assert out.getvalue().strip() == "enqueued 5 demo.echo jobs"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope"], "unknown job kind 'nope'"),
        (["demo.echo", "--payload", "{bad"], "--payload is not JSON"),
        (["demo.echo", "--run-after", "soon"], "--run-after: 'soon' is not an ISO-8601 date-time"),
        (["demo.echo", "--max-attempts", "0"], "maxAttempts: must be an integer from 1 to 100"),
        (["demo.echo", "--count", "0"], "--count must be at least 1"),
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
    with pytest.raises(CommandError, match="--concurrency must be from 1 to 64"):
        call_command("run_jobs", "--concurrency", "0")


@pytest.mark.parametrize("budget", ["0", "-1", "31"])
def test_run_jobs__refuses_a_budget_that_is_not_safely_below_the_lease(settings: Any, budget: str) -> None:
    settings.JOBS_LEASE_SECONDS = 60
    call_command("enqueue_job", "demo.echo", stdout=StringIO())

    with pytest.raises(
        CommandError, match=r"--budget must be more than 0 and at most 30 s \(half of JOBS_LEASE_SECONDS=60\)"
    ):
        call_command("run_jobs", "--budget", budget)
    assert BackgroundJob.objects.get().status == "pending"
