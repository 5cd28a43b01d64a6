"""A command whose database cannot be reached says which database and why on one line, and exits non-zero."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable

import pytest
from django.db import OperationalError, connection

from core.database import unreachable_database_exits
from testsupport import procs

PASSWORD = "not-shown-s3cret"
MISSING = "orch_never_created"
# Every command whose traceback an operator met, against a database that does not exist; two against a closed port.
CASES = [
    *(
        (command, "missing")
        for command in (("dispatch_tick",), ("run_jobs",), ("reconcile",), ("enqueue_job", "demo.echo"))
    ),
    *((command, where) for command in (("migrate",), ("run_jobs", "--loop")) for where in ("missing", "closed")),
]


def test_commands__an_unreachable_database_is_one_line_not_a_traceback(
    closed_port: int, reap: Callable[[subprocess.Popen[str]], subprocess.Popen[str]]
) -> None:
    host, port = procs.database_address()
    user = connection.settings_dict["USER"]
    urls = {
        "missing": f"postgres://{user}:{PASSWORD}@{host}:{port}/{MISSING}",
        "closed": f"postgres://{user}:{PASSWORD}@{host}:{closed_port}/{MISSING}",
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
        address = f"{host}:{port if where == 'missing' else closed_port}"
        assert line.startswith(f"{command[0]}: cannot reach the database {MISSING!r} on {address} as {user} (")
        reason = f'database "{MISSING}" does not exist' if where == "missing" else "Connection refused"
        assert reason in line
        assert line.endswith("): check DATABASE_URL (docs/configuration.md)")
        assert PASSWORD not in err


@pytest.mark.django_db(transaction=True)
def test_unreachable_database_exits__another_database_error_is_raised_as_it_is() -> None:
    # The database answers: a failed statement is not an unreachable database, and keeps its traceback.
    with pytest.raises(OperationalError, match="deadlock detected"), unreachable_database_exits("reconcile"):
        raise OperationalError("deadlock detected")
