"""Hostile cron calls (hypothesis): query params and X-Correlation-Id never cause a 500 or an unsafe write."""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.test import Client, override_settings
from django_redis import get_redis_connection
from hypothesis import example, given, settings
from hypothesis import strategies as st

from dispatch.keys import CORRELATION_ID_RE
from dispatch.models import DispatchWindow
from runs.models import FunctionRun
from testsupport.stress import examples

pytestmark = pytest.mark.django_db

SECRET = "cron-secret-for-property-tests"
AUTH = {"Authorization": f"Bearer {SECRET}"}
# The `counter` test job accepts tenant (str), limit (int), dry (bool), region (eu|us).
PARAMS = ["tenant", "limit", "dry", "region"]
# What a WSGI server can hand over: text without lone surrogates.
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=250)
names = st.sampled_from(PARAMS) | texts.filter(bool)


def window_state() -> list[tuple[str, str, int]]:
    return list(DispatchWindow.objects.order_by("pk").values_list("dispatch_key", "status", "duplicate_ticks"))


@override_settings(CRON_SECRET=SECRET)
@settings(max_examples=examples(60))
@given(params=st.dictionaries(names, texts, max_size=4))
@example(params={"limit": "9" * 19})
@example(params={"limit": "1e3"})
@example(params={"tenant": "a\x00b"})
@example(params={"tenant": "\u202etxt.exe"})
@example(params={"region": "eu\n"})
@example(params={"dry": "maybe"})
@example(params={"x" * 300: "1"})
def test_cron__any_query_is_a_tick_or_a_400_naming_a_param(params: dict[str, str]) -> None:
    before = window_state()

    response = Client().get("/api/cron/counter", data=params, headers=AUTH)

    assert response.status_code in {200, 400}, (response.status_code, response.content[:300])
    body = response.json()
    if response.status_code == 400:
        assert set(body) == {"error", "param"}
        assert body["param"] in params
        assert window_state() == before  # refused before the window was touched
    else:
        assert body["job"] == "counter"
        assert body["mode"] == "inline"


@override_settings(CRON_SECRET=SECRET)
@settings(max_examples=examples(60))
@given(header=st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=200))
@example(header="trace-1\r\nSet-Cookie: session=stolen")
@example(header="trace-1\nX-Injected: 1")
@example(header="a" * 64)
@example(header="a" * 65)
@example(header="../../etc/passwd")
@example(header="${jndi:ldap://x}")
def test_cron__x_correlation_id_is_kept_only_when_well_formed_and_never_echoed_raw(header: str) -> None:
    response = Client().get("/api/cron/counter", headers={**AUTH, "X-Correlation-Id": header})

    assert response.status_code == 200, response.content[:300]
    correlation_id = response.json()["correlationId"]
    assert CORRELATION_ID_RE.fullmatch(correlation_id)
    assert (correlation_id == header) == bool(CORRELATION_ID_RE.fullmatch(header))
    assert "X-Correlation-Id" not in response.headers
    for name, value in response.headers.items():
        assert "\n" not in value and "\r" not in value, name
        # A refused header is not echoed (a short one may occur in any header by chance: "/" in a content type).
        if not CORRELATION_ID_RE.fullmatch(header) and len(header.strip()) >= 8:
            assert header not in value, name
    stored = DispatchWindow.objects.values_list("correlation_id", flat=True)
    assert all(CORRELATION_ID_RE.fullmatch(value) for value in stored)


@override_settings(CRON_SECRET=SECRET)
@pytest.mark.parametrize("tenant", ["acme:other", "*", "acme?[x]", "acme other", "a" * 65, "tenant/../x", "acme"])
def test_cron__a_tenant_param_can_never_address_another_tenants_status_blob(tenant: str) -> None:
    response = Client().get("/api/cron/counter", data={"tenant": tenant}, headers=AUTH)

    assert response.status_code == 200, response.content[:300]
    run = FunctionRun.objects.get(function_id="cron-counter")
    expected_scope = tenant if tenant == "acme" else "global"
    assert run.scope == expected_scope
    assert cache.get(f"job:v1:{expected_scope}:cron-counter")["status"] == "succeeded"
    raw_keys = {key.decode() for key in get_redis_connection("default").keys("job:*")}
    assert raw_keys == {f"job:v1:{expected_scope}:cron-counter"}
