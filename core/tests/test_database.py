"""A command whose database cannot be reached says which database and why on one line, and exits non-zero."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator

import psycopg
import pytest
from django.db import OperationalError, connection

from core.database import connection_failure, unreachable_database_exits
from testsupport import procs

PASSWORD = "not-shown-s3cret"
MISSING = "orch_never_created"
NO_HOST = "no-such-host.invalid"
NO_ROLE = "orch_no_such_role"


def _resolver_says(host: str) -> str:
    """What this machine's resolver says of `host` (libpq passes it on): "Name or service not known" where DNS
    answers, "Temporary failure in name resolution" where none does."""
    try:
        socket.getaddrinfo(host, None)
    except socket.gaierror as error:
        return str(error.strerror)
    raise AssertionError(f"{host} resolves on this machine")


UNRESOLVED = f"failed to resolve host '{NO_HOST}': {_resolver_says(NO_HOST)}"
REFUSED = "connection refused; is the server running on that host and accepting TCP/IP connections?"
# Every command whose traceback an operator met, against a database that does not exist; two against a closed port;
# one against a host that does not resolve, one as a role that does not exist.
CASES = [
    *(
        (command, "missing")
        for command in (("dispatch_tick",), ("run_jobs",), ("reconcile",), ("enqueue_job", "demo.echo"))
    ),
    *((command, where) for command in (("migrate",), ("run_jobs", "--loop")) for where in ("missing", "closed")),
    (("run_jobs",), "host"),
    (("reconcile",), "role"),
]


def test_commands__an_unreachable_database_is_one_line_not_a_traceback(
    closed_port: int, reap: Callable[[subprocess.Popen[str]], subprocess.Popen[str]]
) -> None:
    host, port = procs.database_address()
    user = connection.settings_dict["USER"]
    urls = {
        "missing": f"postgres://{user}:{PASSWORD}@{host}:{port}/{MISSING}",
        "closed": f"postgres://{user}:{PASSWORD}@{host}:{closed_port}/{MISSING}",
        "host": f"postgres://{user}:{PASSWORD}@{NO_HOST}:{port}/{MISSING}",
        "role": f"postgres://{NO_ROLE}:{PASSWORD}@{host}:{port}/{MISSING}",
    }
    reasons = {
        "missing": f'database "{MISSING}" does not exist',
        "closed": REFUSED,
        "host": UNRESOLVED,
        "role": f'role "{NO_ROLE}" does not exist',
    }
    children = [
        reap(
            subprocess.Popen(
                [sys.executable, str(procs.ROOT / "manage.py"), *command],
                cwd=procs.ROOT,
                env=procs.child_env(DATABASE_URL=urls[where], LOG_LEVEL="INFO"),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
        for command, where in CASES
    ]

    for (command, where), child in zip(CASES, children, strict=True):
        out, err = child.communicate(timeout=120)
        assert (child.returncode, out) == (1, ""), (command, err)
        [line] = err.splitlines()  # no traceback, no log line
        address = {"closed": f"{host}:{closed_port}", "host": f"{NO_HOST}:{port}"}.get(where, f"{host}:{port}")
        role = NO_ROLE if where == "role" else user
        assert line == (
            f"{command[0]}: cannot reach the database {MISSING!r} on {address} as {role} ({reasons[where]}): "
            "check DATABASE_URL (docs/configuration.md)"
        )
        assert PASSWORD not in err


@pytest.fixture
def hangs_up() -> Iterator[int]:
    """A loopback port whose server accepts a connection and closes it at once."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        server.settimeout(60)  # the thread ends even when no connection comes

        def close_one() -> None:
            try:
                accepted, _ = server.accept()
            except OSError:  # closed at teardown, or timed out: this case connected elsewhere
                return
            accepted.close()

        threading.Thread(target=close_one, daemon=True).start()
        yield server.getsockname()[1]


@pytest.mark.parametrize(
    ("where", "reason"),
    [
        ("missing", f'database "{MISSING}" does not exist'),
        ("closed", REFUSED),
        ("host", UNRESOLVED),
        ("role", f'role "{NO_ROLE}" does not exist'),
        # libpq wraps one sentence over two lines: one clause.
        (
            "hangs up",
            "server closed the connection unexpectedly; this probably means the server terminated "
            "abnormally before or while processing the request.",
        ),  # fmt: skip
        # psycopg tries each host, then names each with its error again: one reason, said once.
        ("closed twice", REFUSED),
        ("missing, then closed", f'database "{MISSING}" does not exist; {REFUSED}'),
    ],
)
def test_connection_failure__psycopgs_lines_are_one_line_of_clauses(
    where: str, reason: str, closed_port: int, hangs_up: int
) -> None:
    host, port = procs.database_address()
    user = connection.settings_dict["USER"]
    dsn = {
        "missing": f"host={host} port={port} user={user} dbname={MISSING}",
        "closed": f"host={host} port={closed_port} user={user} dbname={MISSING}",
        "host": f"host={NO_HOST} port={port} user={user} dbname={MISSING}",
        "role": f"host={host} port={port} user={NO_ROLE} dbname={MISSING}",
        "hangs up": f"host=127.0.0.1 port={hangs_up} user={user} dbname={MISSING}",
        "closed twice": f"host=127.0.0.1,127.0.0.1 port={closed_port},{closed_port} user={user} dbname={MISSING}",
        "missing, then closed": f"host={host},127.0.0.1 port={port},{closed_port} user={user} dbname={MISSING}",
    }[where]
    with pytest.raises(psycopg.OperationalError) as raised:
        psycopg.connect(dsn, connect_timeout=10)

    assert connection_failure(raised.value) == reason


@pytest.mark.django_db(transaction=True)
def test_unreachable_database_exits__another_database_error_is_raised_as_it_is() -> None:
    # The database answers: a failed statement is not an unreachable database, and keeps its traceback.
    with pytest.raises(OperationalError, match="deadlock detected"), unreachable_database_exits("reconcile"):
        raise OperationalError("deadlock detected")
