"""The embedded defaults (docs/configuration.md): nothing configured still runs end to end."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from testsupport.procs import ROOT

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
for key in ("cron:background-jobs:2026-03-14T15:00", "cron:background-jobs:2026-03-14T15:00:manual-0a1b2c3d"):
    FunctionRun.objects.create(function_id="process-background-jobs", dispatch_key=key, run_id=key, started_at=now)
"""


def test_defaults__orchestrator_report_runs_on_sqlite(tmp_path: Path) -> None:
    env = bare_env(DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    manage = str(ROOT / "manage.py")
    run(manage, "migrate", "--noinput", env=env)
    run(manage, "shell", "-c", SEED_REPORT_DATA, env=env)

    done = subprocess.run(
        [sys.executable, manage, "orchestrator_report", "--json"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 1, done.stderr
    body = json.loads(done.stdout)
    metrics = body["metrics"]
    assert [metrics[f"dispatchLatencyP{p}Ms"]["value"] for p in (50, 95, 99)] == [100, 190, 200]
    assert (metrics["duplicateRuns"]["value"], body["failed"]) == (1, ["duplicateRuns"])


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
