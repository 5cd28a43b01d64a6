"""A live gunicorn server for end-to-end tests, on the test run's database and Redis."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from types import TracebackType

import httpx

from orchestrator.testing.procs import ROOT, child_env

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
        self._wait_until_serving()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def stop(self) -> str:
        """Stop the server (once) and return everything it printed."""
        if self.process is not None:
            self.process.terminate()
            self.output, _ = self.process.communicate(timeout=30)
            self.process = None
        return self.output

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
