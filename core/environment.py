"""Reading the environment without ever failing at import (used by orchestrator/settings.py only).

A variable whose text cannot be read as its type (`JOBS_BATCH_SIZE=abc`, malformed
`CRON_JOBS` JSON, `DEBUG=maybe`) keeps its default, and the reason is recorded in
`Env.unreadable`; the configuration checks turn each into an error that says what
to set (docs/operations.md, "Configuration checks"). Unlike django-environ's own
reader, a value starting with `$` is taken as written (never as the name of another
variable), and a boolean must say true or false.
"""

from __future__ import annotations

import json
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

    def db_url(self, var: str = "DATABASE_URL", default: Any = NOTSET, engine: str | None = None) -> dict[str, Any]:
        """Return the database settings of the URL in `var`; an unreadable URL gives a database that refuses use."""
        try:
            config: dict[str, Any] = super().db_url(var, default=default, engine=engine)
        except (KeyError, ValueError):
            # The URL holds a password: never quote it.
            self.unreadable[var] = f"{var} is not a database URL such as postgres://user:password@host:5432/name"
            return {"ENGINE": "django.db.backends.dummy"}
        return config

    db = db_url

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
