"""The metrics directory removed while the processes run (a temporary-files cleaner): the work goes on.

In prometheus-client's multiprocess mode each process writes its counts to files in
PROMETHEUS_MULTIPROC_DIR; once that directory is gone, the next metric a process
creates cannot open its file. Neither a tick nor a job's commit may fail for that:
the process counts in its memory from then on, says so once (`metrics_lost`), and its
`/metrics` answers what it counted (docs/operations.md, "Metrics").
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from freezegun import freeze_time

from jobs.models import BackgroundJob
from jobs.services import job_enqueue
from testsupport import procs
from testsupport.live import Gunicorn
from testsupport.prometheus import samples_of, value

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

TOKEN = "metrics-token"


def logged(output: str, action: str) -> list[dict[str, Any]]:
    """Return the JSON log lines of `output` with `action`."""
    lines = (json.loads(line) for line in output.splitlines() if line.startswith("{"))
    return [line for line in lines if line.get("action") == action]


def errors(output: str) -> list[str]:
    """Return the messages of `output`'s error lines, and any traceback printed outside one."""
    lines = [json.loads(line) if line.startswith("{") else {"message": line} for line in output.splitlines()]
    return [line["message"] for line in lines if line.get("level") == "ERROR" or "Traceback" in line["message"]]


def test_metrics_dir_removed__ticks_answer_and_the_web_process_serves_what_it_counted(tmp_path: Path) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    env = {
        "DEBUG": "false",
        "ALLOWED_HOSTS": "127.0.0.1",
        "CRON_SECRET": "s",
        "METRICS_TOKEN": TOKEN,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "LOG_LEVEL": "INFO",
    }
    with Gunicorn(workers=1, **env) as server:

        def tick(job: str) -> int:
            response = httpx.get(f"{server.url}/api/cron/{job}", headers={"Authorization": "Bearer s"}, timeout=60)
            return response.status_code

        shutil.rmtree(metrics_dir)  # before the worker wrote anything there
        answers = [tick("counter"), tick("daily"), tick("daily")]
        metrics = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        output = server.stop()

    assert answers == [200, 200, 200]
    assert metrics.status_code == 200, metrics.text
    samples = samples_of(metrics.text)
    assert value(samples, "windows_total", job="counter", outcome="inline") == 1
    assert value(samples, "windows_total", job="daily", outcome="inline") == 1
    assert value(samples, "duplicate_ticks_total", job="daily") == 1
    [lost] = logged(output, "metrics_lost")
    assert lost["level"] == "WARNING" and lost["directory"] == str(metrics_dir)
    assert errors(output) == [], output


def test_metrics_dir_removed__a_worker_commits_its_jobs_and_says_so_once(tmp_path: Path, now: datetime) -> None:
    metrics_dir = tmp_path / "metrics"
    metrics_dir.mkdir()
    with freeze_time(now):  # due long before the worker's clock
        recorded = job_enqueue(kind="test.record", priority=4, now=now).job
        cleaner = job_enqueue(kind="test.remove_dir", payload={"path": str(metrics_dir)}, priority=3, now=now).job
        dying = job_enqueue(kind="test.fail", max_attempts=1, priority=2, now=now).job
        returning = job_enqueue(kind="test.returns", payload={"value": 7}, priority=1, now=now).job

    worker = procs.run_manage(
        "run_jobs", "--budget", "30", env=procs.child_env(PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    )

    assert worker.returncode == 0, worker.stderr
    statuses = dict(BackgroundJob.objects.values_list("pk", "status"))
    assert [statuses[job.pk] for job in (recorded, cleaner, dying, returning)] == [
        "succeeded", "succeeded", "dead", "succeeded",
    ]  # fmt: skip
    assert len(logged(worker.stderr, "metrics_lost")) == 1
    assert errors(worker.stderr) == ["job dead-lettered"], worker.stderr  # test.fail's, and nothing of the metrics
    assert not metrics_dir.exists()  # nothing made it again behind the cleaner's back
