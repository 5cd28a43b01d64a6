"""A command's stdout is its result, nothing else: its log lines go to stderr, still JSON (docs/operations.md).

Each command runs as a real process (`manage.py`, as an operator runs it), with INFO logs on.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from core.logs import ConsoleStream, route_command_logs
from jobs.models import BackgroundJob
from testsupport import procs

pytestmark = pytest.mark.django_db(transaction=True)

Reap = Callable[[subprocess.Popen[str]], subprocess.Popen[str]]


def run(*args: str) -> tuple[str, list[dict[str, Any]], int]:
    """Run `manage.py <args>` with INFO logs; return its stdout, its stderr's log lines and its exit code."""
    child = procs.manage(*args, env=procs.child_env(LOG_LEVEL="INFO"))
    out, err = child.communicate(timeout=120)
    return out, log_lines(err), child.returncode


def log_lines(err: str) -> list[dict[str, Any]]:
    """Return stderr's lines, each of which must be a JSON log line."""
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]
    assert all({"level", "logger", "message", "time"} <= line.keys() for line in lines), err
    return lines


def test_dispatch_tick__json_is_the_only_thing_on_stdout(make_job: Callable[..., BackgroundJob]) -> None:
    make_job(kind="test.record")

    out, logs, code = run("dispatch_tick", "--json")

    body = json.loads(out)  # one JSON document: `| jq -r .mode` prints one line
    assert (code, body["mode"], body["summary"]["process-background-jobs"]["claimed"]) == (0, "inline", 1)
    assert any(line.get("action") == "dispatch" and line["dispatchKey"] == body["dispatchKey"] for line in logs)
    assert any(line.get("action") == "jobs_run" for line in logs)


def test_run_maintenance__prints_its_summary_alone() -> None:
    out, logs, code = run("run_maintenance")

    assert code == 0
    assert {"recovered", "pruned", "health", "durationMs"} <= set(json.loads(out))
    assert any(line.get("action") == "queue_health" for line in logs)


def test_reconcile__json_is_the_only_thing_on_stdout() -> None:
    out, _, code = run("reconcile", "--json")

    assert (code, "jobs" in json.loads(out)) == (0, True)


def test_orchestrator_report__json_is_the_only_thing_on_stdout() -> None:
    out, _, code = run("orchestrator_report", "--json")

    assert (code, json.loads(out)["pass"]) == (0, True)


def test_run_jobs__prints_one_summary_its_logs_on_stderr(make_job: Callable[..., BackgroundJob]) -> None:
    make_job(kind="test.record")

    out, logs, code = run("run_jobs")

    [summary] = [json.loads(line) for line in out.splitlines()]
    assert (code, summary["claimed"], summary["succeeded"]) == (0, 1, 1)
    assert any(line.get("action") == "jobs_run" and line["claimed"] == 1 for line in logs)


def test_enqueue_job__prints_what_it_enqueued() -> None:
    out, _, code = run("enqueue_job", "test.record")

    assert code == 0
    assert out == f"enqueued job {BackgroundJob.objects.get().pk} (test.record)\n"


def test_run_jobs_loop__prints_a_line_per_drain_that_ran_jobs_not_per_idle_drain(now: datetime, reap: Reap) -> None:
    worker = reap(procs.manage("run_jobs", "--loop", env=procs.child_env(LOG_LEVEL="DEBUG")))  # idle drains: DEBUG
    assert worker.stdout is not None and worker.stderr is not None
    BackgroundJob.objects.create(kind="test.record", run_after=now, created_at=now)
    first = json.loads(worker.stdout.readline())
    idle = next(line for line in map(json.loads, worker.stderr) if line.get("action") == "jobs_run")
    while idle["claimed"]:  # the drain of the first job may be logged first: wait for an idle one
        idle = next(line for line in map(json.loads, worker.stderr) if line.get("action") == "jobs_run")
    BackgroundJob.objects.create(kind="test.record", run_after=now, created_at=now)
    second = json.loads(worker.stdout.readline())
    worker.send_signal(signal.SIGTERM)
    rest, _ = worker.communicate(timeout=60)

    # Idle drains ran between the two jobs and printed nothing: the next line was the second job's.
    assert (first["claimed"], idle["claimed"], second["claimed"]) == (1, 0, 1)
    assert worker.returncode == 0
    assert len(rest.splitlines()) <= 1  # the summary of the drain the signal stopped


def test_run_jobs_loop__an_idle_worker_logs_nothing_at_info_per_poll(reap: Reap) -> None:
    env = procs.child_env(LOG_LEVEL="DEBUG", JOBS_LISTEN="false", JOBS_POLL_SECONDS="0.05")
    worker = reap(procs.manage("run_jobs", "--loop", env=env))
    assert worker.stderr is not None
    lines: list[dict[str, Any]] = []
    for text in worker.stderr:  # until the worker has polled three times
        lines.append(json.loads(text))
        if sum(line.get("action") == "worker_wake" for line in lines) == 3:
            break
    worker.send_signal(signal.SIGTERM)
    worker.communicate(timeout=60)

    drains = [line for line in lines if line.get("action") == "jobs_run"]
    assert len(drains) >= 3 and all(line["claimed"] == 0 for line in drains)
    assert {line["level"] for line in drains} == {"DEBUG"}  # LOG_LEVEL=INFO shows none of them


def test_route_command_logs__servers_log_on_stdout_commands_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    stream = ConsoleStream()
    try:
        route_command_logs(["manage.py", "runserver"])
        stream.write("server\n")
        route_command_logs(["manage.py", "dispatch_tick", "--json"])
        stream.write("command\n")
    finally:
        route_command_logs(["pytest", "runserver"])  # this process logs on stdout, as before

    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("server\n", "command\n")


def test_manage_py__without_django_keeps_the_virtual_environment_hint() -> None:
    # -S: no site-packages, as with a python outside the virtual environment.
    done = subprocess.run(
        [sys.executable, "-S", str(procs.ROOT / "manage.py"), "check"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode == 1
    assert "Did you forget to activate a virtual environment?" in done.stderr
    assert "`. .venv/bin/activate`" in done.stderr
