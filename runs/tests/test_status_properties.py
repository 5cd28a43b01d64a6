"""Status-blob keys under hostile scopes (hypothesis): no scope or name can reach another tenant's key."""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from django_redis import get_redis_connection
from hypothesis import example, given, settings
from hypothesis import strategies as st

from jobs.services import TENANT_RE
from runs.ledger import scope_of
from runs.status import status_key, status_write
from testsupport.stress import examples

# What a key may look like: four parts, the scope and name free of ':', glob characters and whitespace.
SAFE_KEY_RE = re.compile(r"job:v1:[A-Za-z0-9._-]{1,64}:[A-Za-z0-9._-]{1,100}")
hostile = st.text(max_size=120) | st.sampled_from(["a:b", "*", "a*", "?", "[a-z]", "a\nb", "a\r\nb", "global:x", ""])


@settings(max_examples=examples(300))
@given(scope=hostile, name=hostile)
def test_status_key__is_four_safe_parts_or_refused(scope: str, name: str) -> None:
    try:
        key = status_key(scope, name)
    except ValueError:
        return
    assert SAFE_KEY_RE.fullmatch(key)
    assert key.split(":") == ["job", "v1", scope, name]


@settings(max_examples=examples(300))
@given(tenant=st.none() | st.integers() | hostile | st.from_regex(TENANT_RE, fullmatch=True))
@example(tenant="acme")
def test_scope_of__any_tenant_param_gives_a_scope_the_key_accepts(tenant: object) -> None:
    scope = scope_of({"tenant": tenant})

    assert SAFE_KEY_RE.fullmatch(status_key(scope, "cron-counter"))
    assert scope == (tenant if isinstance(tenant, str) and TENANT_RE.fullmatch(tenant) else "global")


@pytest.mark.parametrize("scope", ["acme:*", "*", "acme\nDEL job:v1:other:x", "acme other", "job:v1:other"])
def test_status_write__a_hostile_scope_writes_no_key_at_all(scope: str, now: datetime) -> None:
    with pytest.raises(ValueError, match="scope"):
        status_write(scope=scope, job_name="cron-counter", now=now, status="running")

    assert get_redis_connection("default").keys("*") == []
