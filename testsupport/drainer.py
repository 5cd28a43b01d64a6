"""A runner child process that drains the queue as `manage.py run_jobs` does, on a clock the test gives.

Usage: python -m testsupport.drainer [--at ISO] [--batch-size N] [--budget S] [--wait] [--recover]

`--at` starts the runner's clock at that instant, moving on with real time, so a
test can put a restarted runner past the leases and backoffs it set up without
waiting for them. `--wait` prints READY and waits for a line on stdin, so that
several processes start draining together. `--recover` first recovers the leases
expired by its clock, as a standing worker's chores do (RECOVERED {...}). The drain's summary is printed last:
SUMMARY {...}. Handlers may print to stdout too (test.crunch prints STARTED).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import django


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--at", default="")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--budget", type=float, default=600.0)
    parser.add_argument("--wait", action="store_true")
    parser.add_argument("--recover", action="store_true")
    options = parser.parse_args()
    django.setup()
    from django.utils import timezone

    from core.timefmt import parse_iso_utc
    from jobs.maintenance import recover_expired_leases
    from jobs.runner import jobs_run

    clock: Callable[[], datetime] = timezone.now
    if options.at:
        start, started = parse_iso_utc(options.at), time.monotonic()

        def clock() -> datetime:
            return start + timedelta(seconds=time.monotonic() - started)

    if options.wait:
        print("READY", flush=True)
        sys.stdin.readline()
    if options.recover:
        print("RECOVERED " + json.dumps(recover_expired_leases(now=clock())), flush=True)
    summary = jobs_run(budget_seconds=options.budget, batch_size=options.batch_size, clock=clock)
    print("SUMMARY " + json.dumps(summary.as_json()), flush=True)


def start(
    *, at: datetime | None = None, batch_size: int | None = None, wait: bool = False, recover: bool = False, **env: str
) -> subprocess.Popen[str]:
    """Start a drainer on the test database (stderr merged into stdout, stdin open)."""
    from testsupport.procs import ROOT, child_env

    args = [sys.executable, "-m", "testsupport.drainer"]
    if at is not None:
        args += ["--at", at.astimezone(UTC).isoformat()]
    if batch_size is not None:
        args += ["--batch-size", str(batch_size)]
    if wait:
        args.append("--wait")
    if recover:
        args.append("--recover")
    return subprocess.Popen(
        args,
        cwd=ROOT,
        env=child_env(**env),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def summary_of(output: str) -> dict[str, int]:
    """Return the SUMMARY a drainer printed (AssertionError if it printed none)."""
    return _printed(output, "SUMMARY")


def recovered_of(output: str) -> dict[str, int]:
    """Return what a drainer started with `recover` recovered (AssertionError if it printed nothing)."""
    return _printed(output, "RECOVERED")


def _printed(output: str, label: str) -> dict[str, int]:
    for line in output.splitlines():
        if line.startswith(label + " "):
            printed: dict[str, int] = json.loads(line.removeprefix(label + " "))
            return printed
    raise AssertionError(f"the drainer printed no {label}:\n{output[-3000:]}")


if __name__ == "__main__":
    main()
