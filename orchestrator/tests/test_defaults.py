"""The embedded defaults (docs/configuration.md): nothing configured still runs end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from testsupport.procs import ROOT, run_manage

PRODUCTION_VARIABLES = ("DATABASE_URL", "REDIS_URL", "INNGEST_EVENT_KEY", "INNGEST_DEV", "DEBUG", "CRON_SECRET")


def bare_env(**extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key not in PRODUCTION_VARIABLES}
    env.update(DJANGO_SETTINGS_MODULE="orchestrator.settings", LOG_LEVEL="WARNING", **extra)
    return env


def run(*args: str, env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_settings__defaults_are_sqlite_locmem_inline_debug() -> None:
    script = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "from dispatch.modes import publishing_configured; "
        "print(json.dumps([s.DATABASES['default']['ENGINE'], str(s.DATABASES['default']['NAME']), "
        "s.CACHES['default']['BACKEND'], s.DEBUG, publishing_configured()]))"
    )

    engine, name, cache, debug, publishing = json.loads(run("-c", script, env=bare_env()))

    assert engine == "django.db.backends.sqlite3"
    assert name == str(ROOT / "db.sqlite3")
    assert cache == "django.core.cache.backends.locmem.LocMemCache"
    assert (debug, publishing) == (True, False)


def test_settings__debug_allows_the_host_a_containers_inngest_calls_and_production_none_by_default() -> None:
    script = (
        "import django, json; django.setup(); from django.conf import settings as s; print(json.dumps(s.ALLOWED_HOSTS))"
    )

    local = json.loads(run("-c", script, env=bare_env()))
    production = json.loads(run("-c", script, env=bare_env(DEBUG="false")))

    # `inngest dev -u http://host.docker.internal:8000/api/inngest` from a container (docs/inngest.md).
    assert "host.docker.internal" in local and "127.0.0.1" in local
    assert production == []


def test_defaults__migrate_enqueue_and_tick_end_to_end_on_sqlite(tmp_path: Path) -> None:
    # The default file lives in the checkout; point SQLite elsewhere so this test
    # leaves the developer's db.sqlite3 alone. Everything else is the default.
    env = bare_env(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    manage = str(ROOT / "manage.py")
    run(manage, "migrate", "--noinput", env=env)
    run(manage, "enqueue_job", "demo.echo", "--count", "3", env=env)
    run(manage, "enqueue_job", "demo.fail", "--max-attempts", "1", env=env)

    body = json.loads(run(manage, "dispatch_tick", "--json", env=env).splitlines()[-1])
    again = json.loads(run(manage, "dispatch_tick", "--json", env=env).splitlines()[-1])

    assert (body["mode"], body["duplicate"]) == ("inline", False)
    process = body["summary"]["process-background-jobs"]
    assert (process["claimed"], process["succeeded"], process["dead"], process["remainingBacklog"]) == (4, 3, 1, 0)
    assert again["duplicate"] is True or again["dispatchKey"] != body["dispatchKey"]


SEED_REPORT_DATA = """
from django.utils import timezone
from dispatch.models import DispatchWindow
from runs.models import FunctionRun
now = timezone.now()
for i in range(1, 21):
    DispatchWindow.objects.create(
        dispatch_key=f"cron:background-jobs:w{i}", job="background-jobs", status="enqueued", mode="dispatch",
        source="cron", correlation_id="c", window_start=now, window_seconds=60, requested_at=now, created_at=now,
        latency_ms=10 * i, publish_attempts=1,
    )
window = "cron:background-jobs:2026-03-14T15:00"
for key in (window, f"{window}:manual-0a1b2c3d", f"{window}:again-1"):
    FunctionRun.objects.create(function_id="process-background-jobs", dispatch_key=key, run_id=key, started_at=now)
"""


def test_defaults__orchestrator_report_runs_on_sqlite(tmp_path: Path) -> None:
    env = bare_env(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    manage = str(ROOT / "manage.py")
    run(manage, "migrate", "--noinput", env=env)
    run(manage, "shell", "-c", SEED_REPORT_DATA, env=env)

    done = run_manage("orchestrator_report", "--json", env=env)

    assert done.returncode == 1, done.stderr
    body = json.loads(done.stdout)
    metrics = body["metrics"]
    assert [metrics[f"dispatchLatencyP{p}Ms"]["value"] for p in (50, 95, 99)] == [100, 190, 200]
    assert (metrics["duplicateRuns"]["value"], body["failed"]) == (1, ["duplicateRuns"])
    assert metrics["manualReruns"]["value"] == 1


COUNT_ON_SQLITE = """
import re
from django.contrib.auth.models import User
from django.test import Client
from django.utils import timezone
from core.paging import LedgerPaginator
from jobs.models import BackgroundJob
LedgerPaginator.exact_limit = 1000  # past it, PostgreSQL would estimate
now = timezone.now()
BackgroundJob.objects.bulk_create([BackgroundJob(kind="demo.noop", run_after=now, created_at=now) for _ in range(1234)])
client = Client()
client.force_login(User.objects.create_superuser("root", "root@example.com", "a-long-password-0"))
page = client.get("/admin/jobs/backgroundjob/").content.decode()
print(" ".join(re.search(r'<p class="paginator">(.*?)</p>', page, re.S)[1].split()[-3:]))
"""


def test_defaults__the_admin_counts_exactly_on_sqlite(tmp_path: Path) -> None:
    env = bare_env(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", ALLOWED_HOSTS="testserver")
    manage = str(ROOT / "manage.py")
    run(manage, "migrate", "--noinput", env=env)

    paginator = run(manage, "shell", "-v", "0", "-c", COUNT_ON_SQLITE, env=env).strip()

    assert paginator == "1,234 background jobs"  # not "about 1,001 (an estimate)"


def make_venv(tmp_path: Path) -> Path:
    """Return a stand-in for `.venv` whose python is this one, installed already (make builds nothing)."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\nexec {sys.executable} "$@"\n')
    python.chmod(0o755)
    (venv / ".installed").touch()
    return venv


def make(target: str, tmp_path: Path, **extra: str) -> subprocess.CompletedProcess[str]:
    env = bare_env(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}", **extra)
    env.pop("LOG_LEVEL")  # as a newcomer's shell has it
    return subprocess.run(
        ["make", "-s", target, f"VENV={make_venv(tmp_path)}"],
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,  # no terminal: nothing may be asked
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_make_demo__shows_the_duplicate_guard_and_names_the_expected_error(tmp_path: Path) -> None:
    done = make("demo", tmp_path)

    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "The two ERROR lines, 'job dead-lettered' and the Tasks framework's 'Task ... state=FAILED'" in out
    assert '"claimed": 5' in out and '"succeeded": 4' in out and '"dead": 1' in out
    assert 'Tick 2 of the same window: answered "duplicate": true' in out
    second = json.loads(next(line for line in out.splitlines() if line.startswith('{"mode"')))
    assert (second["duplicate"], second["summary"]) == (True, None)
    assert "Done: 4 of the 5 jobs succeeded; 1 became a dead letter (demo.fail)" in out
    errors = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert [(line["level"], line["logger"]) for line in errors] == [("ERROR", "jobs.claim"), ("ERROR", "django_tasks")]
    assert (errors[0]["message"], errors[0]["kind"]) == ("job dead-lettered", "demo.fail")
    assert errors[1]["message"].endswith("path=jobs.demo.fail state=FAILED")  # task_finished, to error monitoring
    assert errors[1]["exc_info"].endswith("RuntimeError: demo.fail always fails (attempt 1)")


def test_demo__run_again_in_the_same_window_still_runs_its_jobs_and_leaves_none_pending(tmp_path: Path) -> None:
    env = bare_env(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    manage = str(ROOT / "manage.py")
    run(manage, "migrate", "--noinput", env=env)

    first = run(manage, "demo", "--at", "2026-03-14T15:09:26Z", env=env)
    again = run(manage, "demo", "--at", "2026-03-14T15:09:40Z", env=env)

    report = run_manage("orchestrator_report", "--json", "--since", "366d", env=env)

    assert "ticked already" not in first
    assert "Nothing is configured, so it runs inline" in first
    assert (
        "That window was ticked already (make demo ran earlier in this minute), so this tick should run nothing"
        in again
    )
    assert "It ran nothing (a duplicate); draining the new jobs directly instead" in again
    assert "so it runs inline" not in again  # it says what happens, not what happened the first time
    for out in (first, again):
        assert "Done: 4 of the 5 jobs succeeded; 1 became a dead letter (demo.fail)" in out
        assert "pending" not in out.split("Done:")[1]  # nothing left waiting, unexplained or not
    # Nothing ran twice: a rerun of the demo never crosses the duplicate-runs gate.
    assert json.loads(report.stdout)["metrics"]["duplicateRuns"]["value"] == 0


def test_make_superuser__asks_nothing_with_the_django_superuser_variables(tmp_path: Path) -> None:
    done = make(
        "superuser",
        tmp_path,
        DJANGO_SUPERUSER_USERNAME="root",
        DJANGO_SUPERUSER_EMAIL="root@example.com",
        DJANGO_SUPERUSER_PASSWORD="a-long-password-0",
    )
    env = bare_env(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    check = (
        "from django.contrib.auth import authenticate; "
        "print(authenticate(username='root', password='a-long-password-0').is_superuser)"
    )

    assert done.returncode == 0, done.stderr
    assert "Superuser created successfully." in done.stdout
    assert run(str(ROOT / "manage.py"), "shell", "-v", "0", "-c", check, env=env).strip() == "True"


TICK_A_PAUSED_JOB = """
import json
from datetime import timedelta
from django.contrib.auth.models import User
from django.utils import timezone
from dispatch.registry import get_cron_job
from dispatch.schedule import cron_job_pause
from dispatch.services import dispatch_tick
job = get_cron_job("counter")
now = timezone.now()
first = dispatch_tick(job=job, now=now, source="cron", correlation_id="c", at=now - timedelta(hours=1))
cron_job_pause(job="counter", user=User.objects.create_user("op"), note="on SQLite", now=now)
paused = dispatch_tick(job=job, now=now, source="cron", correlation_id="c")
again = dispatch_tick(job=job, now=now, source="cron", correlation_id="c")
print(json.dumps([first.body["mode"], paused.status_code, paused.body["mode"], again.body["duplicate"]]))
"""


def test_defaults__a_paused_jobs_tick_and_the_reconciler_on_sqlite(tmp_path: Path) -> None:
    env = bare_env(
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        CRON_JOBS='[{"name": "counter", "window_seconds": 300, "callable": "builtins.id"}]',
    )
    manage = str(ROOT / "manage.py")
    run(manage, "migrate", "--noinput", env=env)

    modes = json.loads(run(manage, "shell", "-c", TICK_A_PAUSED_JOB, env=env).splitlines()[-1])
    summary = json.loads(run(manage, "reconcile", "--json", env=env))

    assert modes == ["inline", 200, "paused", True]
    assert summary["jobs"]["counter"]["missed"] + summary["jobs"]["counter"]["paused"] >= 9
