"""What the service says when it cannot reach its database: a 503 JSON answer from a view, one line from a command.

A JSON endpoint that needs the database answers `503` with a one-line JSON error,
never Django's HTML 500 page, when a connection is refused, lost or times out; the
full error goes to the log. A management command whose database cannot be reached
(a database that does not exist, a closed port, a refused login) prints one line
saying which database and why, without its password, and exits 1: `manage.py` runs
every command, Django's own included, inside `unreachable_database_exits`.
"""

from __future__ import annotations

import functools
import logging
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar, cast

from django.db import InterfaceError, OperationalError, connections
from django.http import HttpRequest, HttpResponse, JsonResponse

from core.errors import one_line, squash

logger = logging.getLogger(__name__)

# What a refused, lost or timed-out connection raises (a restart, a failover, a terminated backend).
CONNECTION_ERRORS = (OperationalError, InterfaceError)
# libpq names the server before the reason (`connection to server at "h" (addr), port 5432 failed: `, or `on socket`).
_ADDRESS = re.compile(
    r'(?:connection failed: )?connection to server (?:at|on) (?:socket )?"[^"]*"(?: \([^)]*\))?(?:, port \d+)? failed: '
)
# psycopg lists each host it tried after the last one's error: `- host: 'h', port: 'p', hostaddr: 'a': <error>`.
_ATTEMPTS = "\nMultiple connection attempts failed. All failures were:\n"
_ATTEMPT = re.compile(r"^- host: '[^']*', port: '[^']*', hostaddr: '[^']*': ", re.MULTILINE)
_LABEL = re.compile(r"^(?:FATAL|ERROR|DETAIL|HINT):\s+|\[Errno -?\d+\]\s*")

View = TypeVar("View", bound=Callable[..., HttpResponse])


def unavailable_as_503(*, action: str) -> Callable[[View], View]:
    """Make a view answer 503 JSON (`{"error": "database unavailable (<type>)"}`) when its database is unreachable.

    `action` names the log line's event, as the view's other lines do.
    """

    def decorate(view: View) -> View:
        @functools.wraps(view)
        def answer(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                return view(request, *args, **kwargs)
            except CONNECTION_ERRORS as exc:
                logger.error(
                    f"{request.method} {request.path} failed: database unavailable",
                    extra={"action": action, "error": one_line(exc)},
                )
                return JsonResponse({"error": f"database unavailable ({type(exc).__name__})"}, status=503)

        return cast(View, answer)

    return decorate


@contextmanager
def unreachable_database_exits(command: str) -> Iterator[None]:
    """Run a management command; when it fails because a database cannot be reached, say so on one line and exit 1.

    A connection error is judged by connecting again: if every database answers
    now, the error was something else and is raised as it is.
    """
    try:
        yield
    except CONNECTION_ERRORS:
        problem = unreachable_database()
        if not problem:
            raise
        print(f"{command}: {problem}", file=sys.stderr)
        raise SystemExit(1) from None


def unreachable_database() -> str:
    """Return which configured database cannot be reached and why, without its password; "" when all answer."""
    for database in connections.all():
        database.close()
        try:
            database.ensure_connection()
        except CONNECTION_ERRORS as exc:
            return _describe(database.settings_dict, exc)
        finally:
            database.close()
    return ""


def connection_failure(exc: BaseException) -> str:
    """Return why a connection failed, psycopg's lines folded into one line of clauses.

    libpq's reason and its hint are lines of their own (`Connection refused` / `Is the server
    running…?`): they become `connection refused; is the server running…?`, a sentence wrapped
    over two lines is one clause, the server's `FATAL:` goes, and the hosts psycopg tried, each
    named with its error again, are said once per distinct reason.
    """
    head, _, tried = str(exc).partition(_ATTEMPTS)
    attempts = [part for part in _ATTEMPT.split(tried) if part.strip()] if tried else [head]
    reasons = list(dict.fromkeys(_clauses(_ADDRESS.sub("", attempt)) for attempt in attempts))
    return squash("; ".join(reasons), 500)


def _clauses(message: str) -> str:
    clauses: list[str] = []
    for line in message.strip().splitlines():
        text = _LABEL.sub("", " ".join(line.split()))
        if not text:
            continue
        if clauses and text[0].islower():  # the same sentence, wrapped
            clauses[-1] += f" {text}"
            continue
        if len(text) > 1 and text[1].islower():  # `Connection refused`, `Is the server…`; not `TCP/IP…`
            text = text[0].lower() + text[1:]
        if text not in clauses:
            clauses.append(text)
    return "; ".join(clauses)


def _describe(config: dict[str, Any], exc: Exception) -> str:
    # psycopg names the host and port before the reason: they are said once, below.
    reason = connection_failure(exc.__cause__ or exc)
    if "sqlite3" in config["ENGINE"]:
        where = f"the SQLite database {str(config['NAME'])!r}"
    else:
        host = f"{config.get('HOST') or 'localhost'}:{config.get('PORT') or 'default port'}"
        user = f" as {config['USER']}" if config.get("USER") else ""
        where = f"the database {config['NAME']!r} on {host}{user}"
    return f"cannot reach {where} ({reason}): check DATABASE_URL (docs/configuration.md)"
