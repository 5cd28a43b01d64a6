"""Bearer checks (hypothesis): only the exact secret passes, compared in constant time; an empty secret never."""

from __future__ import annotations

import hmac
from unittest import mock

from django.http import HttpRequest
from django.test import RequestFactory
from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.auth import bearer_matches
from testsupport.stress import examples

# Header values as a WSGI server hands them over: latin-1 text.
latin1 = st.text(st.characters(min_codepoint=1, max_codepoint=255), max_size=80)
secrets = latin1.filter(lambda text: text == text.strip()) | st.just("")


def request_with(header: str | None) -> HttpRequest:
    headers = {} if header is None else {"Authorization": header}
    return RequestFactory().get("/api/cron/background-jobs", headers=headers)


@settings(max_examples=examples(300))
@given(secret=secrets, header=st.none() | latin1 | secrets.map(lambda text: f"Bearer {text}"))
@example(secret="", header="Bearer ")
@example(secret="", header="Bearer")
@example(secret="", header=None)
@example(secret="s3cret", header="bearer s3cret")
@example(secret="s3cret", header="Bearer s3cret ")
@example(secret="s3cret", header="Bearer s3cre")
@example(secret="s3cret", header="Basic s3cret")
def test_bearer_matches__exactly_the_secret_and_never_an_empty_one(secret: str, header: str | None) -> None:
    scheme, _, token = (header or "").partition(" ")
    expected = bool(secret) and scheme.lower() == "bearer" and token.strip() == secret

    assert bearer_matches(request_with(header), secret) is expected


@settings(max_examples=examples(100))
@given(secret=secrets.filter(bool), token=latin1)
def test_bearer_matches__compares_fixed_length_digests_whatever_the_token(secret: str, token: str) -> None:
    with mock.patch("core.auth.hmac.compare_digest", wraps=hmac.compare_digest) as compare:
        bearer_matches(request_with(f"Bearer {token}"), secret)

    # One comparison of two SHA-256 digests: its time depends on neither the secret's length nor the token's.
    [(given_digest, expected_digest), _] = compare.call_args
    assert compare.call_count == 1
    assert (len(given_digest), len(expected_digest)) == (32, 32)
