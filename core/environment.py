"""Reading the environment without ever failing at import (used by orchestrator/settings.py only).

A variable whose text cannot be read as its type (`JOBS_BATCH_SIZE=abc`, malformed
`CRON_JOBS` JSON, `DEBUG=maybe`) keeps its default, and the reason is recorded in
`Env.unreadable`; the configuration checks turn each into an error that says what
to set (docs/operations.md, "Configuration checks"). Unlike django-environ's own
reader, a value starting with `$` is taken as written (never as the name of another
variable), a boolean must say true or false, a number must be finite, and a
number below its `minimum` (or not above its `above`) is refused like text that is
not a number.
"""

from __future__ import annotations

import builtins
import json
import math
import warnings
from typing import Any

import environ

NOTSET: Any = environ.Env.NOTSET
TRUE = frozenset({"true", "on", "ok", "y", "yes", "1"})
FALSE = frozenset({"false", "off", "n", "no", "0", ""})
SHOWN = 40  # characters of a refused value quoted in its message


class Env(environ.Env):  # type: ignore[misc]  # django-environ has no type hints
    """django-environ's typed reader; a value that cannot be read gives its default and is recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.unreadable: dict[str, str] = {}  # variable -> why its value was not used

    def get_value(self, var: str, cast: Any = None, default: Any = NOTSET, parse_default: bool = False) -> Any:
        raw = self.ENVIRON.get(var)
        if raw is None:
            if default is NOTSET:
                raise environ.ImproperlyConfigured(f"Set the {var} environment variable")
            return default
        if cast is None and default not in (None, NOTSET):
            cast = type(default)
        if cast is bool and raw.strip().lower() not in TRUE | FALSE:
            return self._refuse(var, raw, "is neither true nor false", default)
        try:
            # django-environ reads "10s" as 10.0 and "1.5." as 15.0: a number must be written as one.
            return float(raw) if cast is float else self.parse_value(raw, cast)
        except json.JSONDecodeError as exc:
            return self._refuse(var, raw, f"is not valid JSON ({exc})", default)
        except (TypeError, ValueError):
            return self._refuse(var, raw, _expected(cast), default)

    def int(self, var: str, default: Any = NOTSET, *, minimum: builtins.int | None = None) -> Any:
        """Return `var` as a whole number of at least `minimum`; otherwise its default, recorded."""
        return self._bounded(var, super().int(var, default=default), default, minimum=minimum)

    def float(
        self,
        var: str,
        default: Any = NOTSET,
        *,
        minimum: builtins.float | None = None,
        above: builtins.float | None = None,
    ) -> Any:
        """Return `var` as a finite number, at least `minimum`, more than `above`; else its default, recorded."""
        return self._bounded(var, super().float(var, default=default), default, minimum=minimum, above=above)

    def db_url(self, var: str = "DATABASE_URL", default: Any = NOTSET, engine: str | None = None) -> dict[str, Any]:
        """Return the database settings of the URL in `var`; an unreadable URL gives a database that refuses use."""
        try:
            with warnings.catch_warnings():  # "Engine not recognized": refused below, in our own words
                warnings.simplefilter("ignore")
                config: dict[str, Any] = super().db_url(var, default=default, engine=engine)
        except (KeyError, ValueError, environ.ImproperlyConfigured):
            config = {}
        if config.get("ENGINE") not in self.DB_SCHEMES.values():  # an empty value, or a scheme naming no database
            # The URL holds a password: never quote it.
            self.unreadable[var] = f"{var} is not a database URL such as postgres://user:password@host:5432/name"
            return {"ENGINE": "django.db.backends.dummy"}
        return config

    db = db_url

    def _bounded(
        self,
        var: str,
        value: Any,
        default: Any,
        *,
        minimum: builtins.float | None = None,
        above: builtins.float | None = None,
    ) -> Any:
        raw = self.ENVIRON.get(var)
        if raw is None or var in self.unreadable:  # unset (its default stands), or refused already
            return value
        if not math.isfinite(value):
            return self._refuse(var, raw, "is not a finite number", default)
        if minimum is not None and value < minimum:
            return self._refuse(var, raw, f"is less than {minimum:g}", default)
        if above is not None and value <= above:
            return self._refuse(var, raw, f"is not more than {above:g}", default)
        return value

    def _refuse(self, var: str, raw: str, reason: str, default: Any) -> Any:
        shown = raw if len(raw) <= SHOWN else raw[: SHOWN - 1] + "…"
        self.unreadable[var] = f"{var}={shown!r} {reason}"
        return None if default is NOTSET else default


def _expected(cast: Any) -> str:
    if cast is int:
        return "is not a whole number"
    if cast is float:
        return "is not a number"
    return "cannot be read"
