"""Child processes for tests: they use the same test database and Redis as the test run."""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def database_url(*, port: int | None = None) -> str:
    """Return a DATABASE_URL naming the database this test run writes to (through another loopback `port`, if given)."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    credentials = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"], safe="")
    if port is not None:
        return f"postgres://{credentials}@127.0.0.1:{port}/{db['NAME']}"
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def database_address() -> tuple[str, int]:
    """Return the host and port of the test run's PostgreSQL."""
    db = connection.settings_dict
    return db["HOST"] or "127.0.0.1", int(db["PORT"] or 5432)


def child_env(**extra: str) -> dict[str, str]:
    """Return the environment for a child process of this test run."""
    env = dict(os.environ)
    env.update(
        DJANGO_SETTINGS_MODULE="testsupport.settings",
        DATABASE_URL=database_url(),
        REDIS_URL=settings.REDIS_URL,
        PYTHONUNBUFFERED="1",
        LOG_LEVEL=extra.pop("LOG_LEVEL", "WARNING"),
    )
    env.update(extra)
    return env


def manage(*args: str, env: dict[str, str] | None = None, **popen: Any) -> subprocess.Popen[str]:
    """Start `manage.py <args>` as a child process with text pipes (its result on stdout, its logs on stderr)."""
    popen.setdefault("stdout", subprocess.PIPE)
    popen.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(
        [sys.executable, str(ROOT / "manage.py"), *args], cwd=ROOT, env=env or child_env(), text=True, **popen
    )


def run_manage(*args: str, env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run `manage.py <args>` to its end, its output captured as text; its exit code is the caller's to judge."""
    return subprocess.run(
        [sys.executable, str(ROOT / "manage.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def python_module(module: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Start `python -m <module> <args>` as a child process with text pipes (stdin open)."""
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=env or child_env(),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def app_name() -> str:
    """Return a new PGAPPNAME for a child process: its database sessions carry it as application_name."""
    return f"child-{secrets.token_hex(4)}"


def wait_until_disconnected(application_name: str, timeout: float = 60.0) -> None:
    """Wait until no database session of `application_name` is left.

    A killed process's sessions end once they have run what the process had sent
    them (a job's start, sent just before its handler: jobs.lease_pipeline); only then
    do its rows show everything it did.
    """
    deadline = time.monotonic() + timeout
    while True:
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE application_name = %s", [application_name])
            [(sessions,)] = cursor.fetchall()
        if sessions == 0:
            return
        assert time.monotonic() < deadline, f"{sessions} sessions of {application_name} still open"
        time.sleep(0.05)  # readiness polling, not waiting for time to pass


def read_until(stream: IO[str], marker: str) -> str:
    """Read lines until one starts with `marker` and return it (EOF raises AssertionError)."""
    for line in stream:
        if line.startswith(marker):
            return line
    raise AssertionError(f"the child exited before printing {marker!r}")


def release_together(children: list[subprocess.Popen[str]], *, timeout: float) -> list[dict[str, Any]]:
    """Wait until every child printed READY, send them all "go" at once, and return their RESULT lines.

    Each child prints `READY` when set up, waits for a line on stdin, then prints one
    `RESULT {json}` line per outcome. Every child must exit 0.
    """
    for child in children:
        assert child.stdout is not None
        read_until(child.stdout, "READY")
    for child in children:
        assert child.stdin is not None
        child.stdin.write("go\n")
        child.stdin.flush()
    outputs = [child.communicate(timeout=timeout) for child in children]
    assert [child.returncode for child in children] == [0] * len(children), outputs
    return [
        json.loads(line.removeprefix("RESULT "))
        for out, _ in outputs
        for line in out.splitlines()
        if line.startswith("RESULT ")
    ]
