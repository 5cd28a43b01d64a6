from __future__ import annotations

import pytest

from core.errors import error_fingerprint


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (
            "ConnectionError: upstream 10.0.0.7:443 refused job 812",
            "ConnectionError: upstream <n>.<n>.<n>.<n>:<n> refused job <n>",
        ),
        ("RuntimeError: demo.fail always fails (attempt 3)", "RuntimeError: demo.fail always fails (attempt <n>)"),
        (
            "TimeoutError: read timed out at 2026-03-14T15:09:26.500Z after 30.5 s",
            "TimeoutError: read timed out at <time> after <n>.<n> s",
        ),
        ("ValueError: window 2026-03-14 14:05 is closed", "ValueError: window <time> is closed"),
        (
            "LookupError: invoice 3f2a9c1d-0b4e-4c7a-9e1f-0123456789ab not found (commit 8f3a2c1de9, at 0x7f3a)",
            "LookupError: invoice <uuid> not found (commit <hex>, at <hex>)",
        ),
        ("Http404: no page 7", "Http404: no page <n>"),  # the type is kept as written
        ("ValueError: boom\nTraceback (most recent call last): ...", "ValueError: boom"),
        ("retries exhausted after 4 attempts", "retries exhausted after <n> attempts"),
        ("KeyError", "KeyError"),
        ("", ""),
    ],
)
def test_error_fingerprint__masks_ids_numbers_hex_and_times(error: str, cause: str) -> None:
    assert error_fingerprint(error) == cause


def test_error_fingerprint__letters_of_one_cause_share_it_and_it_stays_short() -> None:
    first = error_fingerprint("ConnectionError: upstream 10.0.0.7:443 refused job 812 at 14:05:09")
    second = error_fingerprint("ConnectionError: upstream 10.0.0.9:443 refused job 97 at 09:00:00")

    assert first == second
    assert len(error_fingerprint("ValueError: " + "x" * 5000)) == 200
