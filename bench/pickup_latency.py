"""Benchmark: how soon an idle standing worker starts a job enqueued now, Orchestrator beside its peers.

    python bench/pickup_latency.py        # (make bench runs it with the bench virtualenv)

For each system in turn, in its own scratch database: start its standing worker and
let it go idle, then enqueue JOBS single jobs INTERVAL seconds apart from a separate
client process, and measure each job's enqueue→handler-start latency: a time taken
just before the enqueue call (in the client) and one at the first line of the handler
(in the worker), both `time.monotonic()`, one clock for every process (stamps.py).

- Orchestrator: `manage.py run_jobs --loop`, as an operator runs it (the product's
  settings plus the bench handler module, bench_handlers.py, in JOB_HANDLER_MODULES);
  jobs enqueued through the product's enqueue service;
- pgqueuer: one `PgQueuer` with its defaults (asyncpg, batches of 10, woken by its
  NOTIFY trigger), jobs enqueued with `Queries.enqueue`;
- Procrastinate: one worker with its defaults (concurrency 1, LISTEN/NOTIFY), jobs
  deferred with `defer_async`.

Prints `RESULT {...}` and writes its section of BENCHMARKS.md.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import ROOT, drop_database, load, machine, percentile, today, write_section  # noqa: E402
from orchestrator_peer import worker_command, worker_env  # noqa: E402
from peers import command, install  # noqa: E402
from stamps import read_stamps  # noqa: E402

JOBS = int(os.environ.get("BENCH_PICKUP_JOBS", "200"))
INTERVAL = float(os.environ.get("BENCH_PICKUP_INTERVAL", "0.05"))
IDLE_SECONDS = 2.0  # after the worker is up, before the first job: the worker is idle
GOAL_P50, GOAL_P95 = 10.0, 50.0
NAMES = {
    "orchestrator": "Orchestrator, `run_jobs --loop`",
    "pgqueuer": f"pgqueuer {version('pgqueuer')}, defaults",
    "procrastinate": f"Procrastinate {version('procrastinate')}, defaults",
}


def main() -> dict[str, Any]:
    load_before = load()
    results: dict[str, Any] = {"jobs": JOBS, "intervalMs": INTERVAL * 1000}
    for system in NAMES:
        database = f"orch_bench_pickup_{system}"
        url = install(system, database)
        latencies = measure(system, url)
        drop_database(database)
        results[system] = {
            "p50": percentile(latencies, 0.50),
            "p95": percentile(latencies, 0.95),
            "max": max(latencies),
            "jobs": len(latencies),
        }
        figures = results[system]
        print(f"{system}: p50 {figures['p50']:.1f} ms, p95 {figures['p95']:.1f} ms, max {figures['max']:.1f} ms")
    results["load"] = [load_before, load()]
    write(results)
    print("RESULT " + json.dumps(results), flush=True)
    return results


def measure(system: str, url: str) -> list[float]:
    """Run the standing worker, enqueue JOBS jobs into it, return each job's latency in ms."""
    with tempfile.TemporaryDirectory() as scratch:
        stamps, log = Path(scratch) / "stamps", Path(scratch) / "worker.log"
        worker = start_worker(system, url, stamps=stamps, log=log)
        try:
            time.sleep(IDLE_SECONDS)
            client = subprocess.run(
                command(system, "enqueue", url, JOBS, INTERVAL),
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
                timeout=JOBS * INTERVAL + 60,
            )
            line = next(line for line in client.stdout.splitlines() if line.startswith("RESULT "))
            sent = {int(number): at for number, at in json.loads(line.removeprefix("RESULT "))["sent"].items()}
            deadline = time.monotonic() + 30
            while len(started := read_stamps(stamps)) < len(sent) and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            stop(worker)
        missing = sorted(set(sent) - set(started))
        if missing:
            raise RuntimeError(f"{system}: {len(missing)} jobs never started (worker log: {log.read_text()[-2000:]})")
        return [(started[number] - at) * 1000 for number, at in sent.items()]


def start_worker(system: str, url: str, *, stamps: Path, log: Path) -> subprocess.Popen[bytes]:
    """Start `system`'s standing worker and return once it is up (its first output line)."""
    if system == "orchestrator":
        # INFO, as an operator runs it: the worker says `worker listening for jobs` once it is up.
        args, env = worker_command(), {**worker_env(url), "LOG_LEVEL": "INFO"}
    else:
        args, env = command(system, "listen", url), dict(os.environ)
    env["BENCH_STAMPS"] = str(stamps)
    with log.open("wb") as out:
        worker = subprocess.Popen(args, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.monotonic() + 60
    while not log.read_bytes().strip():  # run_jobs logs that it listens (or its chores); peers say READY
        if worker.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{system} worker did not start: {log.read_text()[-2000:]}")
        time.sleep(0.05)
    return worker


def stop(worker: subprocess.Popen[bytes]) -> None:
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=15)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def write(results: dict[str, Any]) -> None:
    rows = [
        f"| {NAMES[system]} | {results[system]['p50']:.1f} ms | {results[system]['p95']:.1f} ms | "
        f"{results[system]['max']:.1f} ms | {'yes' if met(results[system]) else '**no**'} |"
        for system in NAMES
    ]
    write_section(
        "bench/pickup_latency.py",
        [
            "## Pickup latency (enqueue → handler start, idle standing worker)",
            "",
            f"`python bench/pickup_latency.py` on {today()}: {machine()}; load average {results['load'][0]} before, "
            f"{results['load'][1]} after. For each system in turn, in its own scratch database: its standing "
            f"worker is started and left idle for {IDLE_SECONDS:.0f} s, then a separate client process enqueues "
            f"{JOBS} single jobs {INTERVAL * 1000:.0f} ms apart. Latency: from a `time.monotonic()` reading just "
            "before the enqueue call to one at the handler's first line (one clock for all processes). "
            "Orchestrator: `manage.py run_jobs --loop` as an operator runs it, jobs enqueued through the product's "
            "enqueue service (the bench handler registered through `JOB_HANDLER_MODULES`); pgqueuer: one "
            "`PgQueuer` with its defaults (asyncpg, batches of 10, NOTIFY); Procrastinate: one worker with its "
            "defaults (concurrency 1, LISTEN/NOTIFY).",
            "",
            f"| Worker | p50 | p95 | max | Goal (p50 ≤ {GOAL_P50:.0f} ms, p95 ≤ {GOAL_P95:.0f} ms) |",
            "| --- | ---: | ---: | ---: | :---: |",
            *rows,
        ],
    )


def met(figures: dict[str, float]) -> bool:
    return figures["p50"] <= GOAL_P50 and figures["p95"] <= GOAL_P95


if __name__ == "__main__":
    main()
