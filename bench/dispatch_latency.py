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
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

import product  # noqa: E402
from common import (  # noqa: E402
    ROOT,
    drop_database,
    load,
    machine,
    median,
    run_psql,
    scratch_database,
    spread,
    today,
    write_section,
)

SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
REPEAT = int(os.environ.get("BENCH_REPEAT", "3"))
STRIDE = 8_000  # names per wrk thread and run: more than one thread can tick in a run
WARM_UP = 60
CALIBRATE = 20  # requests of each kind whose transactions and publishes are counted
SECRET = "bench-cron-secret"
EVENT_KEY = "bench-event-key"
PUBLISH_BOUND = 1.5
FLOOR_GOAL = 1.3
FLOOR_PATH = "/bench/floor/"
# Each round runs every phase once, in this order. Fresh and floor phases take their
# names from disjoint ranges, so that no phase ever ticks a window another one claimed.
DISPATCH_LATENCY = "orchestrator_dispatch_latency_seconds"
PHASES: dict[str, dict[str, Any]] = {
    "fresh1": {"kind": "fresh", "threads": 1, "connections": 1},
    "floor1": {"kind": "floor", "threads": 1, "connections": 1},
    "dup1": {"kind": "dup", "threads": 1, "connections": 1},
    "fresh8": {"kind": "fresh", "threads": 2, "connections": 8},
    "floor8": {"kind": "floor", "threads": 2, "connections": 8},
    "dup8": {"kind": "dup", "threads": 2, "connections": 8},
}


def main() -> dict[str, object]:
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install -y wrk")
    database = "orch_bench_dispatch"
    per_round = {kind: sum(p["threads"] for p in PHASES.values() if p["kind"] == kind) for kind in ("fresh", "floor")}
    warm_start = STRIDE * REPEAT * per_round["fresh"] + STRIDE  # after the fresh phases and the hanging phase
    names_needed = warm_start + WARM_UP + CALIBRATE
    results: dict[str, Any] = {"bound": PUBLISH_BOUND, "seconds": SECONDS, "repeat": REPEAT, "load": [load()]}
    with product.event_api(event_key=EVENT_KEY) as event_api, tempfile.TemporaryDirectory() as logs:
        url = scratch_database(database)
        server = Server(url, event_api.url, cron_jobs=names_needed, warm_start=warm_start, log_dir=Path(logs))
        with server:
            results["perRequest"] = calibrate(server, event_api, first=warm_start + WARM_UP)
            runs: dict[str, list[dict[str, float]]] = {name: [] for name in PHASES}
            starts = {"fresh": 0, "floor": 0}
            for _ in range(REPEAT):
                for name, phase in PHASES.items():
                    kind, shape = phase["kind"], {"threads": phase["threads"], "connections": phase["connections"]}
                    if kind == "dup":
                        runs[name].append(wrk(server.url, fixed="background-jobs", **shape))
                        continue
                    path = FLOOR_PATH if kind == "floor" else "/api/cron/"
                    runs[name].append(wrk(server.url, start=starts[kind], path=path, **shape))
                    starts[kind] += STRIDE * shape["threads"]
            event_api.behave("hang")
            hang = wrk(server.url, start=starts["fresh"], threads=1, connections=1, seconds=8, timeout=10)
            event_api.behave("ok")
            enqueued = server.count_enqueued()
        log_errors = server.errors()
        results["workerJobs"] = server.jobs_counted()
        results["series"] = series_cost(server, jobs=max(results["workerJobs"], default=0))
        drop_database(database)
    for phase, measured in runs.items():
        results[phase] = {key: median([run[key] for run in measured]) for key in ("p50", "p95", "p99", "max", "rate")}
        results[phase]["non2xx"] = sum(run["non2xx"] for run in measured)
    results["ratios"] = floor_ratios(runs)
    results["hang"] = hang
    results["freshRequests"] = sum(run["requests"] for phase in ("fresh1", "fresh8") for run in runs[phase])
    results["floorRequests"] = sum(run["requests"] for phase in ("floor1", "floor8") for run in runs[phase])
    results["enqueuedWindows"], results["floorWindows"] = enqueued
    results["serverErrors"] = log_errors
    results["load"].append(load())
    write(results)
    print("RESULT " + json.dumps(results), flush=True)
    return results


def floor_ratios(runs: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, list[float]]]:
    """Return, for fresh and duplicate dispatch at 1 and 8 clients, each round's p50 and p95 over the floor's."""
    return {
        f"{kind}{clients}": {
            key: [
                run[key] / floor[key]
                for run, floor in zip(runs[f"{kind}{clients}"], runs[f"floor{clients}"], strict=True)
            ]
            for key in ("p50", "p95")
        }
        for kind in ("fresh", "dup")
        for clients in (1, 8)
    }


def calibrate(server: Server, event_api: Any, *, first: int) -> dict[str, dict[str, Any]]:
    """Return the statements run and events published per fresh dispatch and per floor request.

    The floor stands for a fresh dispatch only while both do the same work: this counts
    it, CALIBRATE requests of each through the same settings and middleware
    (bench/statements.py, Django's test client in a process of its own).
    """
    figures = {}
    for kind, prefix in (("fresh", "/api/cron/bench-"), ("floor", f"{FLOOR_PATH}calibrate-")):
        posts = event_api.requests
        with tempfile.TemporaryDirectory() as metrics:  # not the workers': their files are counted at the end
            env = {**server.env, "ALLOWED_HOSTS": "testserver", "PROMETHEUS_MULTIPROC_DIR": metrics}
            done = subprocess.run(
                [sys.executable, str(ROOT / "bench" / "statements.py"), prefix, str(first), str(CALIBRATE)],
                env=env, capture_output=True, text=True, check=True, cwd=ROOT,
            )  # fmt: skip
        line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
        figures[kind] = {**json.loads(line.removeprefix("RESULT ")), "posts": (event_api.requests - posts) / CALIBRATE}
    return figures


def series_cost(server: Server, *, jobs: int) -> dict[str, float]:
    """Return what making the metric series of `jobs` new cron jobs costs one process (bench/series.py)."""
    with tempfile.TemporaryDirectory() as directory:
        env = {**server.env, "PROMETHEUS_MULTIPROC_DIR": directory}
        done = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "series.py"), str(jobs)],
            env=env, capture_output=True, text=True, check=True, cwd=ROOT,
        )  # fmt: skip
    line = next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))
    figures: dict[str, float] = json.loads(line.removeprefix("RESULT "))
    return figures


class Server:
    """gunicorn started with the Procfile's `web` command, on a free port."""

    def __init__(
        self, database_url: str, event_api_url: str, *, cron_jobs: int, warm_start: int, log_dir: Path
    ) -> None:
        self.port = _free_port()
        self.warm_start = warm_start
        self.database_url = database_url
        self.log_path = log_dir / "server.log"
        # The workers' metrics files, kept after the server exits (gunicorn removes only a directory it made).
        self.metrics_dir = log_dir / "metrics"
        self.metrics_dir.mkdir()
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
            "PROMETHEUS_MULTIPROC_DIR": str(self.metrics_dir),
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
            httpx.get(f"{self.url}{FLOOR_PATH}warm-{number:05d}", timeout=30)
        return self

    def __exit__(self, *args: object) -> None:
        assert self.process is not None
        self.process.terminate()
        self.process.wait(timeout=30)
        self.log.close()

    def count_enqueued(self) -> tuple[int, int]:
        """Return how many cron windows and how many floor windows ended enqueued."""
        sql = (
            f"SELECT count(*) FILTER (WHERE dispatch_key LIKE 'cron:%'), count(*) FILTER (WHERE dispatch_key LIKE "
            f"'floor:%') FROM {product.WINDOWS_TABLE} WHERE status = 'enqueued'"
        )
        cron, floor = run_psql(self.database_url, sql).split("|")
        return int(cron), int(floor)

    def jobs_counted(self) -> list[int]:
        """Return, for each worker, how many cron jobs it made metric series for (its dispatch latency's)."""
        from prometheus_client.mmap_dict import MmapedDict

        counted = []
        for path in sorted(self.metrics_dir.glob("histogram_*.db")):
            values = MmapedDict.read_all_values_from_file(path)  # type: ignore[no-untyped-call]
            keys = (json.loads(key) for key, *_ in values)
            if jobs := len({labels["job"] for name, _, labels, _ in keys if name == DISPATCH_LATENCY}):
                counted.append(jobs)  # a file of none is `migrate`'s, before the server started
        return counted

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
    path: str = "/api/cron/",
    seconds: int = SECONDS,
    timeout: int = 5,
) -> dict[str, float]:
    env = {**os.environ, "BENCH_SECRET": SECRET, "BENCH_START": str(start), "BENCH_STRIDE": str(STRIDE)}
    env["BENCH_PATH"] = path
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


def write(results: dict[str, Any]) -> None:
    bound_ms = PUBLISH_BOUND * 1000
    calibration, ratios, hang = results["perRequest"], results["ratios"], results["hang"]
    series = results["series"]
    write_section(
        "bench/dispatch_latency.py",
        [
            "## Dispatch latency (`GET /api/cron/<job>` through gunicorn) and its floor",
            "",
            f"`python bench/dispatch_latency.py` on {today()}: {machine()}; load average {results['load'][0]} "
            f"before, {results['load'][1]} after. gunicorn as in the `Procfile` (2 gthread workers × 4 threads), "
            "production settings (DEBUG off, INFO logs), PostgreSQL scratch database, the loopback event API in "
            f"the benchmark process; wrk as the client, {SECONDS} s per run, the phases interleaved over {REPEAT} "
            f"round{'s' if REPEAT > 1 else ''}, median of the rounds. Latency is what the client saw. Duplicate "
            "ticks tick one job (`background-jobs`) over and over, from every client at once at 8 clients.",
            "",
            "| Phase | Target | p50 | p95 | p99 | max | Requests/s | non-2xx |",
            "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
            _row("Fresh window, 1 client", "p50 ≤ 4 ms, p95 ≤ 8 ms", results["fresh1"]),
            _row("Duplicate tick, 1 client", "p95 ≤ 4 ms", results["dup1"]),
            _row("Floor, 1 client", "", results["floor1"]),
            _row("Fresh window, 8 clients", "≥ 500/s, p99 ≤ 50 ms", results["fresh8"]),
            _row("Duplicate tick, 8 clients", "", results["dup8"]),
            _row("Floor, 8 clients", "", results["floor8"]),
            _row(f"Event API hanging (bound {bound_ms:.0f} ms), 1 client", f"max ≤ {bound_ms + 100:.0f} ms", hang),
            "",
            "**The floor** (`bench/floor.py`, at `/bench/floor/<job>` in the bench URLconf, same gunicorn, settings "
            "and middleware) does a fresh dispatch's unavoidable work and nothing else: the same two statements "
            "on the dispatch window table (the claim's `INSERT … ON CONFLICT (dispatch_key) DO NOTHING RETURNING "
            "id`, the close's `UPDATE`, each its own transaction with asynchronous commit) and one HTTP POST of "
            "the window's event to the same loopback event API, with a plain `httpx` client. Counted over "
            f"{CALIBRATE} requests each through the same settings and middleware (`bench/statements.py`): a fresh "
            f"dispatch ran {calibration['fresh']['statements']:.2f} statements "
            f"({'; '.join(f'`{head} …`' for head in calibration['fresh']['heads'])}) and published "
            f"{calibration['fresh']['posts']:.2f} times per request; the floor "
            f"{calibration['floor']['statements']:.2f} statements "
            f"({'; '.join(f'`{head} …`' for head in calibration['floor']['heads'])}) and "
            f"{calibration['floor']['posts']:.2f} publishes.",
            "",
            f"| Dispatch over the floor (same round, same clients) | p50 | p95 | Goal ≤ {FLOOR_GOAL}× (p50) |",
            "| --- | ---: | ---: | :---: |",
            *(
                f"| {label} | {spread(ratios[key]['p50'], '.2f')}× | {spread(ratios[key]['p95'], '.2f')}× | "
                f"{'yes' if median(ratios[key]['p50']) <= FLOOR_GOAL else '**no**'} |"
                for key, label in (
                    ("fresh1", "Fresh window, 1 client"),
                    ("dup1", "Duplicate tick, 1 client"),
                    ("fresh8", "Fresh window, 8 clients"),
                    ("dup8", "Duplicate tick, 8 clients"),
                )
            ),
            "",
            "**What the bench's thousands of jobs cost in metric series.** A window is one cron job's minute, so "
            "each fresh request here ticks a job of its own, and is that job's first tick in its worker: it makes "
            "the job's labelled metric series (`orchestrator_windows`, `orchestrator_publishes`, and the two "
            "histograms by `job`, `orchestrator_dispatch_latency_seconds` and "
            "`orchestrator_cron_tick_lateness_seconds`, one value per bucket), each an entry of the worker's file "
            "in the multiprocess metrics directory, and they stay for the worker's life. In this run the workers "
            f"made the series of {' and '.join(f'{jobs:,}' for jobs in results['workerJobs'])} jobs. Made in one "
            f"process by `bench/series.py`, {series['jobs']:,} jobs' series cost {series['ms']:.2f} ms per job "
            f"({series['series']:.0f} series, {series['bytes'] / 1024:.1f} KiB of file each), against "
            f"{results['fresh1']['p50'] - results['floor1']['p50']:.2f} ms between a fresh dispatch and its floor "
            "at 1 client (p50); and Python's full garbage collections, which walk every live "
            f"object, took up to {series['gcMaxMs']:.0f} ms with that many series alive — the fresh phases' p99 "
            "spikes. A deployment has tens of cron jobs: each worker makes their series once, at each job's first "
            "tick (or the first `/metrics` scrape it answers), and a fresh dispatch after that makes none. No "
            "smaller set of jobs keeps every request a fresh window, so the fresh phases measure this worst case.",
            "",
            f"Every fresh request claimed its own window: {results['enqueuedWindows']:,} windows enqueued for "
            f"{results['freshRequests']:,} fresh-window requests (plus the warm-up's and calibration's), "
            f"{results['floorWindows']:,} floor windows for {results['floorRequests']:,} floor requests (plus "
            f"the warm-up's and calibration's); server log lines at ERROR: {results['serverErrors']} (the hanging "
            "phase's `publish failed` lines).",
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
