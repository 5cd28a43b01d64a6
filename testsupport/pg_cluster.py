"""A throwaway PostgreSQL cluster, for the tests that restart or crash their database server mid-drain.

The machine's PostgreSQL serves every test run at once: no test may stop it. A test
that needs its server restarted, or crashed, gets a cluster of its own instead: made
by initdb in a temporary directory, listening on a free loopback port, run as the
`postgres` user when the tests run as root (PostgreSQL refuses root), and removed at
the end. Its one database has the schema of the test run's own (pg_dump).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import psycopg
from django.db import connection

DATABASE = "orchestrator"


class Cluster:
    """A PostgreSQL cluster in `directory`, on loopback `port`; the test's to start, restart and crash."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.bindir = Path(_run(["pg_config", "--bindir"]).strip())
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port: int = sock.getsockname()[1]
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/{DATABASE}"
        self._connections: list[psycopg.Connection[Any]] = []

    def create(self) -> None:
        """Make the cluster, start it and give its database the test run's schema."""
        self._pg("initdb", "-D", self._data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")
        self._pg("pg_ctl", "-D", self._data, "-l", self._log, "-o", self._options, "-w", "start")
        self._psql("postgres", "-c", f"CREATE DATABASE {DATABASE}")
        db = connection.settings_dict
        schema = _run(
            [str(self.bindir / "pg_dump"), "--schema-only", "--no-owner", "--no-privileges", db["NAME"]],
            env={"PGHOST": db["HOST"] or "127.0.0.1", "PGPORT": str(db["PORT"] or 5432), "PGUSER": db["USER"] or ""},
        )
        self._psql(DATABASE, input=schema)

    def restart(self, *, mode: Literal["fast", "immediate"]) -> None:
        """Restart the server and return once it accepts connections again.

        `fast` is a clean restart (sessions ended, the log flushed first); `immediate`
        a crash: every process ends at once, and the server replays its log at start,
        losing whatever it had not written out (asynchronous commits among them).
        """
        self._pg("pg_ctl", "-D", self._data, "-l", self._log, "-m", mode, "-o", self._options, "-w", "restart")

    def connect(self) -> psycopg.Connection[Any]:
        """Return a new autocommit connection to the cluster's database (closed with the cluster)."""
        made = psycopg.connect(self.url, autocommit=True)
        self._connections.append(made)
        return made

    @property
    def _data(self) -> str:
        return str(self.directory / "data")

    @property
    def _log(self) -> str:
        return str(self.directory / "server.log")  # the server's output: never a pipe of ours, which it would hold open

    @property
    def _options(self) -> str:
        # fsync off: a crash here is the server's processes dying, not the machine's, so the
        # operating system keeps every write; the server still loses what it had not written.
        return (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.directory} "
            "-c fsync=off -c max_connections=40 -c shared_buffers=16MB"
        )

    def _pg(self, program: str, *args: str) -> None:
        _run([*_as_postgres(), str(self.bindir / program), *args])

    def _psql(self, database: str, *args: str, input: str | None = None) -> None:
        command = [str(self.bindir / "psql"), "-q", "-v", "ON_ERROR_STOP=1", "-h", "127.0.0.1", "-p", str(self.port)]
        _run([*command, "-U", "postgres", "-d", database, *args], input=input)


@contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """Yield a running cluster of the test's own; stop and remove it at the end."""
    directory = Path(tempfile.mkdtemp(prefix="orchestrator-pg-"))
    if os.geteuid() == 0:
        shutil.chown(directory, user="postgres")
    cluster = Cluster(directory)
    try:
        cluster.create()
        yield cluster
    finally:
        for made in cluster._connections:
            made.close()
        subprocess.run(
            [*_as_postgres(), str(cluster.bindir / "pg_ctl"), "-D", cluster._data, "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(directory, ignore_errors=True)


def _as_postgres() -> list[str]:
    """Return the prefix that runs a server program as `postgres` (needed as root only)."""
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


def _run(command: list[str], *, input: str | None = None, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        command, input=input, capture_output=True, text=True, check=False, env={**os.environ, **(env or {})}
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return done.stdout
