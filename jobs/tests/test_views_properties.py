"""Hostile bodies for `POST /api/jobs` (hypothesis): 400 or 413, never 500, and nothing written."""

from __future__ import annotations

import json
from datetime import UTC
from typing import Any

import pytest
from django.test import Client, override_settings
from hypothesis import example, given, settings
from hypothesis import strategies as st

from jobs.models import BackgroundJob
from jobs.services import MAX_PAYLOAD_BYTES, MAX_PAYLOAD_DEPTH
from jobs.views import FIELDS
from testsupport.stress import examples

pytestmark = pytest.mark.django_db

TOKEN = "jobs-token-for-property-tests"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
REFUSED = {400, 413}

# Any JSON value Python's parser accepts, NaN and the infinities included.
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**40), max_value=10**40)
    | st.floats()
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=25,
)
# Values that are wrong for every field but `payload`.
wrong_types = (
    st.none()
    | st.booleans()
    | st.floats()
    | st.lists(st.integers(), max_size=2)
    | st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
)


def post(client: Client, body: bytes | str) -> Any:
    return client.post("/api/jobs", data=body, content_type="application/json", headers=AUTH)


def nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


def same_json(stored: Any, sent: Any) -> bool:
    """Compare JSON values as jsonb keeps them: numbers by value (1e16 comes back as an int)."""
    if isinstance(sent, float) and not isinstance(stored, bool) and isinstance(stored, int | float):
        return float(stored) == sent
    if isinstance(sent, list) and isinstance(stored, list):
        return len(sent) == len(stored) and all(map(same_json, stored, sent))
    if isinstance(sent, dict) and isinstance(stored, dict):
        return sent.keys() == stored.keys() and all(same_json(stored[key], sent[key]) for key in sent)
    return bool(stored == sent) and type(stored) is type(sent)


def assert_refused_and_nothing_written(client: Client, body: bytes | str) -> Any:
    before = BackgroundJob.objects.count()
    response = post(client, body)
    assert response.status_code in REFUSED, (response.status_code, response.content[:300])
    assert set(response.json()) <= {"error", "field"}
    error = response.json()["error"]
    assert error.isprintable() and len(error) <= 500, error[:600]  # one line, whatever the caller sent
    assert BackgroundJob.objects.count() == before
    return response


@override_settings(JOBS_API_TOKEN=TOKEN)
@settings(max_examples=examples(60))
@given(body=json_values)
@example(body={"\n": None})  # a field name the error must not echo raw
@example(body={"x" * 100_000 + "\r\n": 1})
def test_enqueue__any_json_that_is_not_an_object_with_a_known_kind_is_refused(body: Any) -> None:
    if isinstance(body, dict):
        body.pop("kind", None)  # without a kind, no object is a valid job
    assert_refused_and_nothing_written(Client(), json.dumps(body))


@override_settings(JOBS_API_TOKEN=TOKEN)
@settings(max_examples=examples(60))
@given(raw=st.binary(max_size=300))
def test_enqueue__arbitrary_bytes_are_refused(raw: bytes) -> None:
    assert_refused_and_nothing_written(Client(), raw)


@override_settings(JOBS_API_TOKEN=TOKEN)
@settings(max_examples=examples(60))
@given(
    field=st.sampled_from(sorted(FIELDS - {"payload", "kind"})),
    value=wrong_types | st.text(max_size=40) | st.integers(),
)
def test_enqueue__a_wrong_value_for_a_field_is_400_naming_it(field: str, value: Any) -> None:
    valid_values = {
        "tenant": lambda v: isinstance(v, str) and (v == "" or (0 < len(v) <= 64 and v != "global")),
        "dedupeKey": lambda v: v is None or isinstance(v, str),
        "maxAttempts": lambda v: type(v) is int and 1 <= v <= 100,
        "priority": lambda v: type(v) is int and -100 <= v <= 100,
        "runAfter": lambda v: v is None or isinstance(v, str),
    }
    if valid_values[field](value):
        return  # possibly valid: the next test covers valid bodies
    response = assert_refused_and_nothing_written(Client(), json.dumps({"kind": "test.record", field: value}))
    assert response.status_code == 400
    assert response.json()["field"] == field


@override_settings(JOBS_API_TOKEN=TOKEN)
@settings(max_examples=examples(40))
@given(
    payload=json_values.filter(lambda v: "\\u0000" not in json.dumps(v, allow_nan=True)),
    tenant=st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True).filter(lambda t: t != "global") | st.just(""),
    dedupe=st.none() | st.text(min_size=1, max_size=200).filter(str.isprintable),
    max_attempts=st.integers(min_value=1, max_value=100),
    priority=st.integers(min_value=-100, max_value=100),
    run_after=st.none() | st.datetimes(timezones=st.just(UTC)).map(lambda d: d.isoformat()),
)
def test_enqueue__a_body_is_either_created_or_refused_never_a_500(
    payload: Any, tenant: str, dedupe: str | None, max_attempts: int, priority: int, run_after: str | None
) -> None:
    body: dict[str, Any] = {"kind": "test.record", "payload": payload, "tenant": tenant}
    body |= {"maxAttempts": max_attempts, "priority": priority}
    if dedupe is not None:
        body["dedupeKey"] = dedupe
    if run_after is not None:
        body["runAfter"] = run_after
    before = BackgroundJob.objects.count()

    response = post(Client(), json.dumps(body))

    assert response.status_code in {200, 201, 400}, (response.status_code, response.content[:300])
    created = BackgroundJob.objects.count() - before
    if response.status_code == 201:
        assert created == 1
        job = BackgroundJob.objects.get(pk=response.json()["id"])
        assert same_json(job.payload, {} if payload is None else payload)
        assert (job.tenant, job.dedupe_key) == (tenant, dedupe)
    else:
        assert created == 0
    if response.status_code == 400:
        # Only these are refused: a payload with NaN or infinities, a runAfter too far ahead.
        assert response.json()["field"] in {"payload", "runAfter"}, response.json()


@override_settings(JOBS_API_TOKEN=TOKEN)
@settings(max_examples=examples(15))
@given(depth=st.integers(min_value=1, max_value=140_000))
@example(depth=100)
@example(depth=101)
@example(depth=500)
@example(depth=800)
@example(depth=950)
@example(depth=1_000)
@example(depth=3_000)
@example(depth=131_000)
def test_enqueue__deep_nesting_is_stored_up_to_the_limit_and_refused_beyond(depth: int) -> None:
    body = '{"kind": "test.record", "payload": ' + nested(depth) + "}"
    before = BackgroundJob.objects.count()

    response = post(Client(), body)

    if len(body.encode()) > MAX_PAYLOAD_BYTES:
        assert response.status_code == 413
    elif depth <= MAX_PAYLOAD_DEPTH:
        assert response.status_code == 201, response.content[:300]
    else:
        assert response.status_code == 400, (response.status_code, response.content[:300])
        assert response.json()["field"] in {"body", "payload"}  # too deep for the JSON parser, or for the limit
    assert BackgroundJob.objects.count() - before == (response.status_code == 201)


@override_settings(JOBS_API_TOKEN=TOKEN)
@settings(max_examples=examples(10))
@given(
    size=st.integers(min_value=MAX_PAYLOAD_BYTES // 8, max_value=MAX_PAYLOAD_BYTES),
    char=st.sampled_from(["x", "é", "€", "😀", "\\n", '\\"', "\\u00e9", "\\ud83d\\ude00"]),
)
def test_enqueue__huge_strings_are_stored_or_refused_by_size(size: int, char: str) -> None:
    text = char * (size // len(char.encode()))
    body = '{"kind": "test.record", "payload": {"blob": "' + text + '"}}'
    before = BackgroundJob.objects.count()

    response = post(Client(), body)

    if len(body.encode()) > MAX_PAYLOAD_BYTES:
        assert response.status_code == 413
    else:
        assert response.status_code in {201, 400}, (response.status_code, response.content[:300])
        if response.status_code == 400:
            assert response.json()["field"] == "payload"  # bigger than 256 KiB once escaped
    assert BackgroundJob.objects.count() - before == (response.status_code == 201)


@override_settings(JOBS_API_TOKEN=TOKEN)
@pytest.mark.parametrize(
    ("body", "field"),
    [
        # Strings PostgreSQL cannot store: a lone surrogate (not UTF-8), a NUL.
        ('{"kind": "test.record", "payload": {"note": "\\ud800"}}', "payload"),
        ('{"kind": "test.record", "payload": {"\\udfff": 1}}', "payload"),
        ('{"kind": "test.record", "payload": "\\u0000"}', "payload"),
        ('{"kind": "test.record", "dedupeKey": "\\ud800"}', "dedupeKey"),
        ('{"kind": "\\ud800"}', "kind"),
        ('{"kind": "test.record", "tenant": "\\ud800"}', "tenant"),
        # Instants Python cannot move to UTC.
        ('{"kind": "test.record", "runAfter": "0001-01-01T00:00:00+01:00"}', "runAfter"),
        ('{"kind": "test.record", "runAfter": "9999-12-31T23:59:59-01:00"}', "runAfter"),
        ('{"kind": "test.record", "runAfter": "2026-02-30T00:00:00Z"}', "runAfter"),
        ('{"kind": "test.record", "maxAttempts": 1e400}', "maxAttempts"),
        ('{"kind": "test.record", "priority": 100000000000000000000000000000}', "priority"),
        ('{"kind": "test.record", "kind": 1}', "kind"),
    ],
)
def test_enqueue__values_the_database_or_the_clock_cannot_hold_are_400(body: str, field: str) -> None:
    response = assert_refused_and_nothing_written(Client(), body)

    assert (response.status_code, response.json()["field"]) == (400, field)


@override_settings(JOBS_API_TOKEN=TOKEN)
def test_enqueue__an_unknown_kind_is_named_in_one_short_line() -> None:
    body = json.dumps({"kind": "k\u2028\n" * 20_000})

    response = assert_refused_and_nothing_written(Client(), body)

    assert (response.status_code, response.json()["field"]) == (400, "kind")
    assert response.json()["error"].startswith("kind: unknown job kind 'k\\u2028\\nk")


@override_settings(JOBS_API_TOKEN=TOKEN)
def test_enqueue__an_unknown_field_is_named_escaped_and_short() -> None:
    response = assert_refused_and_nothing_written(Client(), json.dumps({"kind": "test.record", "é\n" + "x" * 500: 1}))

    field = response.json()["field"]
    assert (response.status_code, field[:6], len(field)) == (400, "\\xe9\\n", 64)
