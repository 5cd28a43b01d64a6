"""A live gunicorn server for end-to-end tests, on the test run's database and Redis."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from collections.abc import Collection
from pathlib import Path
from types import TracebackType

import httpx

from testsupport.procs import ROOT, child_env

BOOT_SECONDS = 60.0


def free_port() -> int:
    """Return a loopback port that was free a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Gunicorn:
    """gunicorn as in the Procfile, with `env` overrides (settings come from the environment)."""

    def __init__(self, *, workers: int = 2, **env: str) -> None:
        self.port = free_port()
        self.workers = workers
        self.env = child_env(**env)
        self.process: subprocess.Popen[str] | None = None
        self.output = ""
        self._lines: list[str] = []
        self._reader: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Gunicorn:
        command = [
            sys.executable, "-m", "gunicorn", "orchestrator.wsgi",
            "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers), "--timeout", "60",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, cwd=ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        # Read the output as it comes: a pipe nobody reads fills (64 KiB) and then blocks every worker
        # at its next log line, which looks like a hung server under load.
        self._reader = threading.Thread(target=self._read_output, args=(self.process,), daemon=True)
        self._reader.start()
        self._wait_until_serving()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> str:
        """Stop the server (once) and return everything it printed."""
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=30)
            assert self._reader is not None
            self._reader.join(timeout=30)
            self.output = "".join(self._lines)
            self.process = None
        return self.output

    def _read_output(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        with process.stdout:
            for line in process.stdout:
                self._lines.append(line)

    def worker_pids(self) -> set[int]:
        """Return the pids of the master's live worker processes (read from /proc)."""
        assert self.process is not None
        workers = set()
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:  # the process ended while we looked
                continue
            state, parent = stat.rsplit(")", 1)[1].split()[:2]
            if int(parent) == self.process.pid and state != "Z":
                workers.add(int(entry.name))
        return workers

    def wait_for_workers(self, count: int, *, without: Collection[int] = (), timeout: float = BOOT_SECONDS) -> set[int]:
        """Poll until the master runs `count` workers, none of them in `without` (a respawn); return them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            workers = self.worker_pids()
            if len(workers) == count and not workers & set(without):
                return workers
            time.sleep(0.05)  # readiness polling, not waiting for time to pass
        raise RuntimeError(f"gunicorn did not come back to {count} workers (it has {self.worker_pids()})")

    def _wait_until_serving(self) -> None:
        """Poll until the server answers HTTP (any status), or fail with its output."""
        deadline = time.monotonic() + BOOT_SECONDS
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited early:\n{self.stop()}")
            try:
                httpx.get(f"{self.url}/api/cron/boot-probe", timeout=1.0)
                return
            except httpx.TransportError:
                time.sleep(0.05)  # readiness polling, not waiting for time to pass
        raise RuntimeError(f"gunicorn did not start:\n{self.stop()}")
