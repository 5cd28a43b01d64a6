"""Benchmark: the cron call's latency and throughput through gunicorn, started as the Procfile says.

    python bench/dispatch_latency.py        # (make bench runs it with the bench virtualenv)

The server runs with production settings (DEBUG off, PostgreSQL in a scratch database,
Redis, INFO logs to a file) and publishes to the loopback event API in this process.
wrk drives it: each request of the fresh-window phases ticks a different registered cron
job, so every request claims a new window and publishes; the duplicate phase ticks one
job over and over; the last phase makes the event API hang. Prints `RESULT {...}` and
writes its section of BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, drop_database, machine, median, scratch_database, today, write_section  # noqa: E402

SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
STRIDE = 8_000  # names per wrk thread and run: more than one thread can tick in a run
WARM_UP = 60
SECRET = "bench-cron-secret"
EVENT_KEY = "bench-event-key"
PUBLISH_BOUND = 1.5
# Disjoint job-name ranges, so that no phase ever ticks a window another one claimed.
PHASES = {
    "fresh1": {"threads": 1, "connections": 1},
    "fresh8": {"threads": 2, "connections": 8},
}


def main() -> dict[str, object]:
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install -y wrk")
    sys.path.insert(0, str(ROOT))
    from testsupport.event_api import EventAPI

    database = "orch_bench_dispatch"
    fresh_names = STRIDE * REPEAT * sum(shape["threads"] for shape in PHASES.values())
    warm_start = fresh_names + STRIDE  # after the fresh phases and the hanging phase
    names_needed = warm_start + WARM_UP
    results: dict[str, object] = {"bound": PUBLISH_BOUND}
    with EventAPI(event_key=EVENT_KEY) as event_api, tempfile.TemporaryDirectory() as logs:
        url = scratch_database(database)
        server = Server(url, event_api.url, cron_jobs=names_needed, warm_start=warm_start, log_dir=Path(logs))
        with server:
            start = 0
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in ("fresh1", "dup1", "fresh8")}
            for _ in range(REPEAT):
                for phase in ("fresh1", "fresh8"):
                    shape = PHASES[phase]
                    runs[phase].append(
                        wrk(server.url, start=start, **shape)  # type: ignore[arg-type]
                    )
                    start += STRIDE * shape["threads"]
                runs["dup1"].append(wrk(server.url, fixed="background-jobs", threads=1, connections=1))
            event_api.behave("hang")
            hang = wrk(server.url, start=start, threads=1, connections=1, seconds=8, timeout=10)
            event_api.behave("ok")
            enqueued = server.count_enqueued()
        log_errors = server.errors()
        drop_database(database)
    for phase, measured in runs.items():
        results[phase] = {key: median([run[key] for run in measured]) for key in ("p50", "p95", "p99", "max", "rate")}
        results[phase]["non2xx"] = sum(run["non2xx"] for run in measured)  # type: ignore[index]
    results["hang"] = hang
    results["freshRequests"] = sum(run["requests"] for phase in ("fresh1", "fresh8") for run in runs[phase])
    results["enqueuedWindows"] = enqueued
    results["serverErrors"] = log_errors
    write(results)
    print("RESULT " + json.dumps(results), flush=True)
    return results


class Server:
    """gunicorn started with the Procfile's `web` command, on a free port."""

    def __init__(
        self, database_url: str, event_api_url: str, *, cron_jobs: int, warm_start: int, log_dir: Path
    ) -> None:
        self.port = _free_port()
        self.warm_start = warm_start
        self.database_url = database_url
        self.log_path = log_dir / "server.log"
        self.env = {
            **os.environ,
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
            "PYTHONPATH": f"{ROOT / 'bench'}:{ROOT}",
            "DJANGO_SETTINGS_MODULE": "bench_settings",
            "BENCH_CRON_JOBS": str(cron_jobs),
            "PORT": str(self.port),
            "DATABASE_URL": database_url,
            "REDIS_URL": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/11"),
            "DEBUG": "false",
            "SECRET_KEY": "bench-secret-key-" + "x" * 40,
            "ALLOWED_HOSTS": "127.0.0.1",
            "CRON_SECRET": SECRET,
            "INNGEST_EVENT_KEY": EVENT_KEY,
            "INNGEST_SIGNING_KEY": "signkey-bench-" + "ab" * 32,
            "INNGEST_EVENT_API_BASE_URL": event_api_url,
            "INNGEST_PUBLISH_TIMEOUT_SECONDS": str(PUBLISH_BOUND),
            "LOG_LEVEL": "INFO",
        }
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        subprocess.run([sys.executable, str(ROOT / "manage.py"), "migrate", "-v0"], env=self.env, check=True, cwd=ROOT)
        web = next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith("web:"))
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            ["bash", "-c", "exec " + web.removeprefix("web:").strip()], env=self.env, cwd=ROOT, stdout=self.log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                httpx.get(f"{self.url}/api/health", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.1)
        # Warm every worker: the registry parse, the event loop thread, connections.
        for number in range(WARM_UP):
            httpx.get(f"{self.url}/api/cron/bench-{self.warm_start + number:05d}", headers=_auth(), timeout=30)
        return self

    def __exit__(self, *args: object) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()

    def count_enqueued(self) -> int:
        from common import run_psql

        sql = "SELECT count(*) FROM dispatch_dispatchwindow WHERE status = 'enqueued'"
        return int(run_psql(self.database_url, sql))

    def errors(self) -> int:
        """Return how many log lines the server wrote at ERROR level (or tracebacks)."""
        text = self.log_path.read_text(errors="replace")
        return len(re.findall(r'"level": "(ERROR|CRITICAL)"|Traceback', text))


def wrk(
    url: str,
    *,
    threads: int,
    connections: int,
    start: int = 0,
    fixed: str = "",
    seconds: int = SECONDS,
    timeout: int = 5,
) -> dict[str, float]:
    env = {**os.environ, "BENCH_SECRET": SECRET, "BENCH_START": str(start), "BENCH_STRIDE": str(STRIDE)}
    if fixed:
        env["BENCH_FIXED"] = fixed
    command = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", f"--timeout={timeout}s",
        "-s", str(ROOT / "bench" / "cron.lua"), url,
    ]  # fmt: skip
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    result: dict[str, float] = json.loads(line.removeprefix("RESULT "))
    result["rate"] = result["requests"] / result["seconds"]
    return result


def write(results: dict[str, object]) -> None:
    fresh1, dup1, fresh8, hang = (results[name] for name in ("fresh1", "dup1", "fresh8", "hang"))
    assert isinstance(fresh1, dict) and isinstance(dup1, dict) and isinstance(fresh8, dict) and isinstance(hang, dict)
    bound_ms = PUBLISH_BOUND * 1000
    write_section(
        "bench/dispatch_latency.py",
        [
            "## Dispatch latency (`GET /api/cron/<job>` through gunicorn)",
            "",
            f"`python bench/dispatch_latency.py` on {today()}: {machine()}. gunicorn as in the `Procfile` "
            "(2 gthread workers × 4 threads), production settings (DEBUG off, INFO logs), PostgreSQL "
            "scratch database, the loopback event API in the benchmark process; wrk as the client, "
            f"{SECONDS} s per run, median of {REPEAT} runs. Latency is what the client saw.",
            "",
            "| Phase | Target | p50 | p95 | p99 | max | Requests/s | non-2xx |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            _row("Fresh window, 1 client", "p50 ≤ 4 ms, p95 ≤ 8 ms", fresh1),
            _row("Duplicate tick, 1 client", "p95 ≤ 4 ms", dup1),
            _row("Fresh window, 8 clients", "≥ 500/s, p99 ≤ 50 ms", fresh8),
            _row(f"Event API hanging (bound {bound_ms:.0f} ms), 1 client", f"max ≤ {bound_ms + 100:.0f} ms", hang),
            "",
            f"Every fresh request claimed its own window: {results['enqueuedWindows']:,} windows enqueued for "
            f"{results['freshRequests']:,} fresh-window requests (plus the warm-up's); server log lines at ERROR: "
            f"{results['serverErrors']} (the hanging phase's `publish failed` lines).",
        ],
    )


def _row(label: str, target: str, figures: dict[str, float]) -> str:
    return (
        f"| {label} | {target} | {figures['p50']:.2f} ms | {figures['p95']:.2f} ms | {figures['p99']:.2f} ms | "
        f"{figures['max']:.1f} ms | {figures['rate']:,.0f} | {figures['non2xx']:.0f} |"
    )


def _auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {SECRET}"}


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


if __name__ == "__main__":
    main()
