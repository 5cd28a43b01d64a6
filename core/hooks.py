"""A start-up hook: how a lower layer calls into a higher one without importing it.

The lower layer owns the hook and calls it; the higher layer registers its callable
once, in its `AppConfig.ready()`. Calling a hook nobody registered raises
ImproperlyConfigured naming the app to install: the work it stands for (a dead
letter, an inline run) must never be skipped in silence.
"""

from __future__ import annotations

from typing import Generic, TypeVar

from django.core.exceptions import ImproperlyConfigured

T = TypeVar("T")


class Hook(Generic[T]):
    """One callable, registered at start-up by the app named `provider`."""

    def __init__(self, name: str, *, provider: str) -> None:
        self.name = name
        self.provider = provider
        self._target: T | None = None

    def register(self, target: T) -> None:
        """Register `target`; a second, different registration is refused."""
        if self._target is not None and self._target is not target:
            raise ImproperlyConfigured(f"the {self.name} is registered twice: {self._target!r} and {target!r}")
        self._target = target

    def target(self) -> T:
        """Return the registered callable; raise ImproperlyConfigured when there is none."""
        if self._target is None:
            raise ImproperlyConfigured(
                f"no {self.name} is registered: add {self.provider!r} to INSTALLED_APPS "
                "(its AppConfig.ready() registers it)"
            )
        return self._target
