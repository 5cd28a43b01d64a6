"""Child processes for tests: they use the same test database and Redis as the test run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[1]


def database_url() -> str:
    """Return a DATABASE_URL naming the database this test run writes to."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    credentials = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"], safe="")
    return f"postgres://{credentials}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


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
