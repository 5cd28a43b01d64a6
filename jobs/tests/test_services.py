from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from jobs.exceptions import InvalidJob, UnknownKind
from jobs.models import BackgroundJob
from jobs.services import MAX_PAYLOAD_BYTES, job_enqueue

pytestmark = pytest.mark.django_db


def test_job_enqueue__creates_a_pending_job(now: datetime) -> None:
    result = job_enqueue(kind="test.record", payload={"a": 1}, tenant="acme", priority=3, now=now)

    job = BackgroundJob.objects.get()
    assert result.created is True
    assert result.job == job
    assert (job.kind, job.payload, job.tenant, job.priority) == ("test.record", {"a": 1}, "acme", 3)
    assert (job.status, job.attempts, job.max_attempts) == ("pending", 0, 5)
    assert job.run_after == now


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"kind": "no.such.kind"}, "kind", "unknown job kind 'no.such.kind'; registered kinds: demo.echo"),
        ({"kind": ""}, "kind", "is required"),
        ({"kind": 7}, "kind", "is required and must be a string"),
        ({"payload": {"f": object()}}, "payload", "is not JSON-serialisable"),
        ({"payload": {"f": float("nan")}}, "payload", "is not JSON-serialisable"),
        ({"payload": {"f": "x" * MAX_PAYLOAD_BYTES}}, "payload", "is larger than 256 KiB"),
        ({"payload": {"f": "nul\x00byte"}}, "payload", "contains a NUL character"),
        ({"tenant": "a:b"}, "tenant", "must be empty or match"),
        ({"tenant": "global"}, "tenant", "'global' is reserved"),
        ({"tenant": "x" * 65}, "tenant", "must be empty or match"),
        ({"dedupe_key": ""}, "dedupeKey", "1 to 200 characters"),
        ({"dedupe_key": "line\nbreak"}, "dedupeKey", "printable"),
        ({"run_after": datetime(2026, 1, 1)}, "runAfter", "with a UTC offset"),
        ({"run_after": "tomorrow"}, "runAfter", "with a UTC offset"),
        ({"run_after_delta": timedelta(days=400)}, "runAfter", "within a year"),
        ({"max_attempts": 0}, "maxAttempts", "from 1 to 100"),
        ({"max_attempts": 101}, "maxAttempts", "from 1 to 100"),
        ({"max_attempts": "3"}, "maxAttempts", "from 1 to 100"),
        ({"max_attempts": True}, "maxAttempts", "from 1 to 100"),
        ({"priority": 101}, "priority", "from -100 to 100"),
        ({"priority": 1.5}, "priority", "from -100 to 100"),
    ],
)
def test_job_enqueue__refuses_invalid_input_and_writes_nothing(
    now: datetime, fields: dict[str, object], field: str, message: str
) -> None:
    arguments: dict[str, object] = {"kind": "test.record", **fields}
    delta = arguments.pop("run_after_delta", None)
    if isinstance(delta, timedelta):
        arguments["run_after"] = now + delta

    with pytest.raises(InvalidJob) as caught:
        job_enqueue(now=now, **arguments)  # type: ignore[arg-type]

    assert caught.value.field == field
    assert message in str(caught.value)
    assert not BackgroundJob.objects.exists()


def test_job_enqueue__unknown_kind_is_its_own_error(now: datetime) -> None:
    with pytest.raises(UnknownKind):
        job_enqueue(kind="nope", now=now)


def test_job_enqueue__dedupe_key_returns_the_live_job(now: datetime) -> None:
    first = job_enqueue(kind="test.record", dedupe_key="invoice-7", tenant="acme", now=now)
    second = job_enqueue(kind="test.record", dedupe_key="invoice-7", tenant="acme", payload={"x": 1}, now=now)

    assert (first.created, second.created) == (True, False)
    assert second.job.pk == first.job.pk
    assert BackgroundJob.objects.count() == 1


def test_job_enqueue__dedupe_key_is_per_tenant(now: datetime) -> None:
    job_enqueue(kind="test.record", dedupe_key="k", tenant="acme", now=now)
    other = job_enqueue(kind="test.record", dedupe_key="k", tenant="globex", now=now)
    global_job = job_enqueue(kind="test.record", dedupe_key="k", now=now)

    assert other.created and global_job.created
    assert BackgroundJob.objects.count() == 3


def test_job_enqueue__a_finished_job_frees_its_dedupe_key(now: datetime) -> None:
    first = job_enqueue(kind="test.record", dedupe_key="k", now=now)
    BackgroundJob.objects.filter(pk=first.job.pk).update(status="succeeded")

    again = job_enqueue(kind="test.record", dedupe_key="k", now=now)

    assert again.created is True
    assert again.job.pk != first.job.pk


def test_job_enqueue__the_database_refuses_two_live_jobs_with_one_key(now: datetime) -> None:
    from django.db import IntegrityError, transaction

    job_enqueue(kind="test.record", dedupe_key="k", now=now)
    with pytest.raises(IntegrityError), transaction.atomic():
        BackgroundJob.objects.create(kind="test.record", dedupe_key="k")


def test_job_enqueue__an_unknown_kind_names_each_task_once(now: datetime) -> None:
    from jobs.registry import registered_kinds

    with pytest.raises(UnknownKind) as caught:
        job_enqueue(kind="demo.nope", now=now)

    named = str(caught.value).removeprefix("kind: unknown job kind 'demo.nope'; registered kinds: ").split(", ")
    assert named[:5] == ["demo.echo", "demo.fail", "demo.flaky", "demo.noop", "demo.sleep"]
    assert not [kind for kind in registered_kinds() if kind.startswith("jobs.demo.")]  # not again by module path
    assert job_enqueue(kind="jobs.demo.echo", payload={"args": [], "kwargs": {}}, now=now).created  # still runs


def test_job_enqueue__an_unknown_kind_names_as_many_registered_kinds_as_fit(now: datetime) -> None:
    import testsupport.tasks  # noqa: F401  (its tasks register: more kinds than fit in one line)
    from jobs.registry import registered_kinds

    with pytest.raises(UnknownKind) as caught:
        job_enqueue(kind="nope", now=now)

    message = str(caught.value)
    assert message.startswith("kind: unknown job kind 'nope'; registered kinds: demo.echo, demo.fail, ")
    assert message.endswith(f", … ({len(registered_kinds())} in all; see docs/tasks.md)")
    assert len(message) < 300
