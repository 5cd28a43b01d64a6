"""The production set-up as docs/configuration.md gives it: gunicorn's lines and the app's all JSON, no warning per
worker, and `check --deploy` clean once HTTPS is configured."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

from testsupport.live import Gunicorn
from testsupport.procs import run_manage

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "a-production-secret-key-that-is-long-and-random-enough-0123456789",
    "ALLOWED_HOSTS": "orchestrator.example.com,127.0.0.1",
    "CRON_SECRET": "cron-secret",
    "JOBS_API_TOKEN": "jobs-token",
    "METRICS_TOKEN": "metrics-token",
}
HTTPS = {
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "SECURE_HSTS_PRELOAD": "true",
}


@pytest.mark.django_db(transaction=True)
def test_gunicorn__its_own_lines_and_the_apps_are_json_with_no_warning_per_worker() -> None:
    with Gunicorn(workers=2, LOG_LEVEL="INFO", **PRODUCTION) as server:
        httpx.get(f"{server.url}/api/health", timeout=30)
        httpx.get(f"{server.url}/no-such-page", timeout=30)  # django.request logs it, with its request
        # The workers share a metrics directory gunicorn.conf.py made for them: the events of both are served.
        metrics = httpx.get(f"{server.url}/metrics", headers={"Authorization": "Bearer metrics-token"}, timeout=30)
        output = server.stop()

    assert metrics.status_code == 200
    assert 'orchestrator_windows_total{job="background-jobs",outcome="enqueued"} 0.0' in metrics.text

    lines = [line for line in output.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is JSON
    assert not [line for line in lines if "No directory at" in line or "<WSGIRequest" in line or "<socket" in line]
    booted = [r for r in records if r["logger"] == "gunicorn.error" and r["message"].startswith("Booting worker")]
    assert len(booted) == 2
    assert all({"level", "logger", "message", "time"} <= record.keys() for record in records)
    [not_found] = [r for r in records if r["logger"] == "django.request" and r["status_code"] == 404]
    assert (not_found["level"], not_found["request"]) == ("WARNING", "GET /no-such-page")


@pytest.mark.django_db(transaction=True)
def test_gunicorn__a_mistyped_debug_fails_closed_and_says_so_at_start_up() -> None:
    mistyped = {**PRODUCTION, "DEBUG": "fasle"}
    del mistyped["JOBS_API_TOKEN"], mistyped["METRICS_TOKEN"]
    with Gunicorn(workers=1, LOG_LEVEL="INFO", **mistyped) as server:
        enqueue = httpx.post(f"{server.url}/api/jobs", json={"kind": "demo.echo"}, timeout=30)
        scrape = httpx.get(f"{server.url}/metrics", timeout=30)
        missing = httpx.get(f"{server.url}/no-such-page", timeout=30)
        output = server.stop()

    # Production's answers: the endpoints without their token are closed, and no debug page shows the URLconf.
    assert (enqueue.status_code, enqueue.json()) == (
        503,
        {"error": "the jobs API is disabled until JOBS_API_TOKEN is set"},
    )
    assert scrape.status_code == 503
    assert missing.status_code == 404 and "URLconf" not in missing.text
    said = [json.loads(line) for line in output.splitlines() if '"action": "configuration"' in line]
    assert [(line["level"], line["variable"]) for line in said] == [("ERROR", "DEBUG")]
    assert said[0]["message"].startswith("DEBUG='fasle' is neither true nor false: DEBUG is off until it is fixed")


def deploy_check(tmp_path: Path, **variables: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "REDIS_URL")}
    env.update(DJANGO_SETTINGS_MODULE="orchestrator.settings", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    env.update(variables)
    return run_manage("check", "--deploy", "--fail-level", "WARNING", env=env)


def test_check_deploy__comes_out_clean_with_https_configured(tmp_path: Path) -> None:
    without = deploy_check(tmp_path, **PRODUCTION)
    done = deploy_check(tmp_path, **PRODUCTION, **HTTPS)

    assert "security.W004" in without.stderr and "security.W008" in without.stderr  # what HTTPS settings fix
    assert (done.returncode, done.stdout.strip(), done.stderr) == (
        0,
        "System check identified no issues (0 silenced).",
        "",
    )


@pytest.mark.django_db
def test_https_redirect__leaves_the_health_check_of_a_load_balancer_alone(settings: Any) -> None:
    settings.SECURE_SSL_REDIRECT = True
    http = Client()

    assert http.get("/api/status").status_code == 301
    assert http.get("/api/health").status_code == 200


def _metrics_dirs_of(pids: set[int]) -> set[Path]:
    """Return the directories gunicorn.conf.py made that hold the metric files of the workers `pids`."""
    return {
        found.parent
        for found in Path(tempfile.gettempdir()).glob("orchestrator-metrics-*/*.db")
        if int(found.stem.rsplit("_", 1)[1]) in pids
    }


@pytest.mark.django_db(transaction=True)
def test_gunicorn__a_reload_keeps_the_counts_and_the_directory_it_made_goes_when_it_exits() -> None:
    def health_requests() -> float:
        scrape = httpx.get(f"{server.url}/metrics", headers={"Authorization": "Bearer metrics-token"}, timeout=30)
        by_view = ("django_http_requests_latency_seconds_by_view_method_count", "health", "GET")
        return next(
            sample.value
            for family in text_string_to_metric_families(scrape.text)
            for sample in family.samples
            if (sample.name, sample.labels.get("view"), sample.labels.get("method")) == by_view
        )

    server = Gunicorn(workers=2, METRICS_REQUESTS="true", **PRODUCTION)
    server.env.pop("PROMETHEUS_MULTIPROC_DIR", None)  # gunicorn.conf.py makes one of its own
    with server:
        assert server.process is not None
        before = server.wait_for_workers(2)
        for _ in range(3):
            assert httpx.get(f"{server.url}/api/health", timeout=30).status_code == 200
        assert health_requests() == 3
        [made] = _metrics_dirs_of(before)

        server.process.send_signal(signal.SIGHUP)  # a reload: the config is read again, new workers
        after = server.wait_for_workers(2, without=before)
        for _ in range(2):
            assert httpx.get(f"{server.url}/api/health", timeout=30).status_code == 200

        assert _metrics_dirs_of(after) == {made}
        assert health_requests() == 5  # the old workers' requests count once, from their files
        server.stop()  # SIGTERM

    assert server.process is None
    assert not made.exists()
