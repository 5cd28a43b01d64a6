from __future__ import annotations

from collections.abc import Callable

import pytest
from django.core.exceptions import ImproperlyConfigured

from core.hooks import Hook


def test_hook__returns_what_was_registered_and_accepts_it_again() -> None:
    hook: Hook[Callable[[], int]] = Hook("answer hook", provider="answers")

    def answer() -> int:
        return 42

    hook.register(answer)
    hook.register(answer)  # AppConfig.ready() may run again in a process: the same callable is fine

    assert hook.target()() == 42


def test_hook__refuses_a_second_callable() -> None:
    hook: Hook[Callable[[], int]] = Hook("answer hook", provider="answers")
    hook.register(lambda: 1)

    with pytest.raises(ImproperlyConfigured, match="the answer hook is registered twice"):
        hook.register(lambda: 2)


def test_hook__unregistered_names_the_app_to_install() -> None:
    hook: Hook[Callable[[], int]] = Hook("answer hook", provider="answers")

    with pytest.raises(ImproperlyConfigured, match="no answer hook is registered: add 'answers' to INSTALLED_APPS"):
        hook.target()
