"""Settings for Orchestrator: the one place that reads the environment (every variable: docs/configuration.md).

With nothing set, the service runs on embedded defaults (SQLite file, local-memory
cache, inline mode, DEBUG on). Production sets DATABASE_URL, REDIS_URL, SECRET_KEY,
DEBUG=false, CRON_SECRET, JOBS_API_TOKEN, INNGEST_EVENT_KEY and INNGEST_SIGNING_KEY.
Nothing here raises on a bad value: it keeps a safe value, and a configuration check
says what is wrong and what to set (core.environment).
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import django_stubs_ext

from core.environment import Env
from core.logs import json_formatter

# Let annotations such as admin.ModelAdmin[Model] work at run time.
django_stubs_ext.monkeypatch()

BASE_DIR = Path(__file__).resolve().parent.parent

env = Env()
# The variables whose value could not be read, and why (filled as they are read below):
# each kept its default, and a configuration check reports it (orchestrator.checks).
ENVIRONMENT_ERRORS: dict[str, str] = env.unreadable

# The development key is public: `manage.py check --deploy` refuses it.
DEV_SECRET_KEY = "django-insecure-orchestrator-development-key-do-not-deploy"
SECRET_KEY = env.str("SECRET_KEY", default=DEV_SECRET_KEY)
if not SECRET_KEY.strip():
    # Set but empty: not the public key (anyone could sign a session), but one of this process's own,
    # so sign-ins last until a restart. `manage.py check` says so (orchestrator.E007).
    ENVIRONMENT_ERRORS["SECRET_KEY"] = "SECRET_KEY is set but empty"
    SECRET_KEY = secrets.token_urlsafe(50)
DEBUG = env.bool("DEBUG", default=True)
if "DEBUG" in ENVIRONMENT_ERRORS:
    # An unreadable DEBUG (`DEBUG=fasle`) fails closed: production's behaviour, not the development default. The web
    # process says so at start-up (orchestrator/wsgi.py), a check says what to set (orchestrator.E008).
    DEBUG = False
# Unset with DEBUG on: Django's local hosts, and the name a container reaches this machine by (the dev server's
# container recipe in docs/inngest.md calls http://host.docker.internal:8000/api/inngest).
LOCAL_HOSTS = [".localhost", "127.0.0.1", "[::1]", "host.docker.internal"]
ALLOWED_HOSTS: list[str] = env.list("ALLOWED_HOSTS", default=LOCAL_HOSTS if DEBUG else [])
CSRF_TRUSTED_ORIGINS: list[str] = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Which deployment this is ("production", "preview", ...): a preview must never
# publish into production's Inngest environment.
DEPLOY_ENV = env.str("DEPLOY_ENV", default="")
VERCEL_ENV = env.str("VERCEL_ENV", default="")

INSTALLED_APPS = [
    "orchestrator.admin_config.OrchestratorAdminConfig",  # django.contrib.admin, with the health panel
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "django_tasks",  # Django's Tasks framework on Django 5.2; its system checks validate TASKS
    # The project's layers, top first: each imports only those below it (docs/architecture.md).
    "orchestrator",
    "runs",
    "dispatch",
    "jobs",
    "core",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "orchestrator.urls"
WSGI_APPLICATION = "orchestrator.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -----------------------------------------------------------------
DATABASES: dict[str, dict[str, Any]] = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60, minimum=0)
# Off (Django's default): a health check is a round trip on every request. After a
# database restart one request per process fails (the cron view answers 503 JSON)
# and its connection is replaced.
DATABASES["default"]["CONN_HEALTH_CHECKS"] = env.bool("CONN_HEALTH_CHECKS", default=False)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # SQLite has no row locks: IMMEDIATE transactions take the write lock at
    # BEGIN, so a claim (select, then update) is never interleaved with another.
    DATABASES["default"]["OPTIONS"] = {
        "transaction_mode": "IMMEDIATE",
        "timeout": 20,
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    options = DATABASES["default"].setdefault("OPTIONS", {})
    # A database that is down must fail the request fast, not hang it.
    options.setdefault("connect_timeout", env.int("DATABASE_CONNECT_TIMEOUT", default=3, minimum=1))
    # psycopg 3 sends parameters apart from the SQL and prepares a statement once it
    # has run five times: the queue's and the dispatcher's hot statements are then
    # planned once per connection (BENCHMARKS.md has the figures). A pooler that
    # cannot keep prepared statements across transactions (PgBouncer before 1.21,
    # or without max_prepared_statements) needs DATABASE_PREPARED_STATEMENTS=false.
    options.setdefault("server_side_binding", True)
    options.setdefault("prepare_threshold", 5 if env.bool("DATABASE_PREPARED_STATEMENTS", default=True) else None)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache (status blobs) -----------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL and urlsplit(REDIS_URL).scheme not in {"redis", "rediss", "unix"}:
    # The URL may hold a password: never quote it. Status blobs stay in this process until it is fixed.
    ENVIRONMENT_ERRORS["REDIS_URL"] = "REDIS_URL is not a Redis URL such as redis://host:6379/0"
    REDIS_URL = ""
_RAW_KEYS = "core.cache.raw_key"  # keys in Redis are exactly job:v1:...
if REDIS_URL:
    CACHES: dict[str, dict[str, Any]] = {
        "default": {
            "BACKEND": "django_redis.cache.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_FUNCTION": _RAW_KEYS,
            "OPTIONS": {
                "SERIALIZER": "django_redis.serializers.json.JSONSerializer",
                # An unreachable Redis costs a run at most this, never the run.
                "SOCKET_CONNECT_TIMEOUT": env.float("REDIS_CONNECT_TIMEOUT", default=0.25, above=0),
                "SOCKET_TIMEOUT": env.float("REDIS_SOCKET_TIMEOUT", default=0.5, above=0),
            },
        }
    }
else:
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "KEY_FUNCTION": _RAW_KEYS,
        }
    }

# --- Auth, i18n, static -------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# The admin shows every time one way, `2026-12-04 14:05:21 UTC` (core/formats/en/formats.py).
FORMAT_MODULE_PATH = ["core.formats"]

STATIC_URL = "static/"
# Serve the admin's assets from the installed apps: no collectstatic step to forget. STATIC_ROOT
# is set only to serve collected files instead (whitenoise warns in every worker when it is missing).
STATIC_ROOT = env.str("STATIC_ROOT", default="") or None
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- HTTPS (production: docs/configuration.md, "HTTPS") -----------------------------
if not DEBUG:
    # Behind a proxy that terminates TLS and says so: the request counts as HTTPS.
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=False)
# A load balancer's health check may come in plain HTTP: /api/health answers it rather than redirect.
SECURE_REDIRECT_EXEMPT = [r"^api/health$"]
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0, minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=False)

# --- Logging: one JSON object per line -----------------------------------------
# On stdout in the web process; on stderr in a management command, whose stdout is its
# result (manage.py routes them: core.logs).
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"json": json_formatter()},
    "filters": {"context": {"()": "core.logcontext.ContextFilter"}},
    "handlers": {
        "console": {"()": "core.logs.ConsoleHandler", "formatter": "json", "filters": ["context"]},
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django": {"level": env.str("DJANGO_LOG_LEVEL", default="WARNING")},
        "inngest": {"level": env.str("INNGEST_LOG_LEVEL", default="WARNING")},
        "httpx": {"level": "WARNING"},
        # The Tasks framework logs each task's start and success at INFO (the runner logs its own outcomes),
        # and each failure with logger.exception: TASKS_LOG_LEVEL=INFO shows the first two (docs/tasks.md).
        "django_tasks": {"level": env.str("TASKS_LOG_LEVEL", default="WARNING")},
    },
}

# --- Cron dispatch (docs/cron.md) ---------------------------------------------
CRON_SECRET = env.str("CRON_SECRET", default="")
# Extra cron jobs, beside the built-in `background-jobs`. Each entry:
#   {"name": "nightly-report", "window_seconds": 3600,
#    "callable": "myapp.tasks.nightly_report",
#    "params": {"tenant": {"type": "str", "required": False}}}
# The callable receives one dispatch.registry.CronContext (params, now,
# budget_seconds, dispatch_key, correlation_id, ...) and returns a JSON summary.
CRON_JOBS: list[dict[str, Any]] = env.json("CRON_JOBS", default=[])
# Per-job dispatch flags, keyed by variable name: BACKGROUND_JOBS_USE_INNGEST for
# `background-jobs`, CRON_<NAME>_USE_INNGEST for the others. Unset or empty means "auto".
DISPATCH_FLAGS: dict[str, bool] = {
    name: flag
    for name, value in os.environ.items()
    if (name == "BACKGROUND_JOBS_USE_INNGEST" or re.fullmatch(r"CRON_[A-Z0-9_]+_USE_INNGEST", name))
    and value.strip()
    and (flag := env.bool(name, default=None)) is not None  # unreadable: left unset, and reported
}
BACKGROUND_JOBS_FORCE_INLINE = env.bool("BACKGROUND_JOBS_FORCE_INLINE", default=False)
BACKGROUND_JOBS_INNGEST_PERCENT = env.int("BACKGROUND_JOBS_INNGEST_PERCENT", default=100)
if "BACKGROUND_JOBS_INNGEST_PERCENT" in ENVIRONMENT_ERRORS:
    BACKGROUND_JOBS_INNGEST_PERCENT = 0  # unreadable: no window dispatches until it is fixed (orchestrator.E005)
BACKGROUND_JOBS_INLINE_EMERGENCY_FALLBACK = env.bool("BACKGROUND_JOBS_INLINE_EMERGENCY_FALLBACK", default=False)
BACKGROUND_JOBS_INLINE_EMERGENCY_FALLBACK_UNTIL = env.str("BACKGROUND_JOBS_INLINE_EMERGENCY_FALLBACK_UNTIL", default="")
INLINE_TIME_BUDGET_SECONDS = env.float("INLINE_TIME_BUDGET_SECONDS", default=10.0, above=0)

# --- Inngest (docs/inngest.md) ------------------------------------------------
INNGEST_APP_ID = env.str("INNGEST_APP_ID", default="orchestrator")
INNGEST_EVENT_KEY = env.str("INNGEST_EVENT_KEY", default="")
INNGEST_SIGNING_KEY = env.str("INNGEST_SIGNING_KEY", default="")
# INNGEST_SIGNING_KEY_FALLBACK (key rotation) is read by the Inngest SDK itself.
# "1"/"true" for the dev server on its default URL, or the dev server's URL.
INNGEST_DEV = env.str("INNGEST_DEV", default="")
INNGEST_ENV = env.str("INNGEST_ENV", default="")
INNGEST_BASE_URL = env.str("INNGEST_BASE_URL", default="")
INNGEST_EVENT_API_BASE_URL = env.str("INNGEST_EVENT_API_BASE_URL", default="")
INNGEST_API_BASE_URL = env.str("INNGEST_API_BASE_URL", default="")
# The origin Inngest reaches this app at, when it is not the one the sync request came to (behind a proxy).
INNGEST_SERVE_ORIGIN = env.str("INNGEST_SERVE_ORIGIN", default="")
# Cloud mode: whether an unsigned PUT /api/inngest may make the app register itself (docs/security.md).
INNGEST_ENABLE_UNAUTHED_SYNC = env.bool("INNGEST_ENABLE_UNAUTHED_SYNC", default=False)
INNGEST_PUBLISH_TIMEOUT_SECONDS = env.float("INNGEST_PUBLISH_TIMEOUT_SECONDS", default=1.5, above=0)
INNGEST_FUNCTION_RETRIES = env.int("INNGEST_FUNCTION_RETRIES", default=3, minimum=0)
# A signed call to /api/inngest older than this (or this far in the future) is a replay: refused.
INNGEST_SIGNATURE_MAX_AGE_SECONDS = env.int("INNGEST_SIGNATURE_MAX_AGE_SECONDS", default=300, minimum=1)
# No single call from Inngest may outlive the platform's request timeout: each
# step of a drain stops claiming jobs after this long.
INNGEST_STEP_BUDGET_SECONDS = env.float("INNGEST_STEP_BUDGET_SECONDS", default=20.0, above=0)
INNGEST_STEP_MAX_JOBS = env.int("INNGEST_STEP_MAX_JOBS", default=10_000, minimum=1)
INNGEST_MAX_DRAIN_STEPS = env.int("INNGEST_MAX_DRAIN_STEPS", default=30, minimum=1)

# --- Background-job queue (docs/jobs.md) --------------------------------------
JOBS_API_TOKEN = env.str("JOBS_API_TOKEN", default="")
# Modules imported at start-up so that their @job_handler kinds and @task tasks are registered.
JOB_HANDLER_MODULES: list[str] = env.list("JOB_HANDLER_MODULES", default=["jobs.demo"])
# Django's Tasks framework (docs/tasks.md): every @task of the application is an Orchestrator job.
TASKS: dict[str, dict[str, Any]] = {
    "default": {
        "BACKEND": "jobs.backend.OrchestratorBackend",
        "QUEUES": env.list("TASKS_QUEUES", default=["default"]),
    }
}
# What a job's callable may return: JSON of at most this many bytes, kept on its row.
JOBS_RETURN_VALUE_MAX_BYTES = env.int("JOBS_RETURN_VALUE_MAX_BYTES", default=64 * 1024, minimum=0)
# Modules imported at start-up so that their @maintenance_task tasks are registered.
MAINTENANCE_TASK_MODULES: list[str] = env.list("MAINTENANCE_TASK_MODULES", default=[])
JOBS_BATCH_SIZE = env.int("JOBS_BATCH_SIZE", default=100, minimum=1)
# Group commit (docs/jobs.md, "Group commit"): jobs per transaction, and how long a group
# may stay open before the next job starts (a success waits at most that for its commit).
JOBS_GROUP_MAX_JOBS = env.int("JOBS_GROUP_MAX_JOBS", default=50)
JOBS_GROUP_MAX_MS = env.float("JOBS_GROUP_MAX_MS", default=20.0)
# An idle `run_jobs --loop` worker LISTENs for jobs becoming pending (PostgreSQL), and polls
# every JOBS_POLL_SECONDS besides; JOBS_LISTEN=false (behind a pooler in transaction mode) polls only.
JOBS_LISTEN = env.bool("JOBS_LISTEN", default=True)
JOBS_POLL_SECONDS = env.float("JOBS_POLL_SECONDS", default=5.0)
# Threads per drain, each with its own database connection (handlers must be thread-safe above 1).
JOBS_CONCURRENCY = env.int("JOBS_CONCURRENCY", default=1, minimum=1)
JOBS_LEASE_SECONDS = env.int("JOBS_LEASE_SECONDS", default=60, minimum=1)
JOBS_RETRY_BASE_SECONDS = env.float("JOBS_RETRY_BASE_SECONDS", default=5.0, minimum=0)
JOBS_RETRY_MAX_SECONDS = env.float("JOBS_RETRY_MAX_SECONDS", default=3600.0, minimum=0)
# A window's row and its runs' rows are what make a late tick, a redelivered event (Inngest keeps an
# event id for 24 h) or a manual `dispatch_tick --at` of the window a duplicate: keep them two days at least.
RETENTION_MIN_DAYS = 2
JOBS_RETENTION_DAYS = env.int("JOBS_RETENTION_DAYS", default=7, minimum=1)
RUNS_RETENTION_DAYS = env.int("RUNS_RETENTION_DAYS", default=30, minimum=RETENTION_MIN_DAYS)
WINDOWS_RETENTION_DAYS = env.int("WINDOWS_RETENTION_DAYS", default=30, minimum=RETENTION_MIN_DAYS)
MAINTENANCE_PRUNE_BATCH_SIZE = env.int("MAINTENANCE_PRUNE_BATCH_SIZE", default=1000, minimum=1)
MAINTENANCE_PRUNE_MAX_BATCHES = env.int("MAINTENANCE_PRUNE_MAX_BATCHES", default=10, minimum=1)
STATUS_BLOB_TTL_SECONDS = env.int("STATUS_BLOB_TTL_SECONDS", default=7 * 24 * 3600, minimum=1)

# --- Reconciliation: every window accounted for (docs/operations.md) ----------
# How far back the reconciler looks for windows without a row (a period: 90m, 24h, 7d).
RECONCILE_LOOKBACK = env.str("RECONCILE_LOOKBACK", default="24h")
# How long after a window ends its tick may still come before the window is `missed`: this many
# windows of the job (at least 60 s).
RECONCILE_GRACE_WINDOWS = env.int("RECONCILE_GRACE_WINDOWS", default=1)
# A calendar job's tick is due at its fire time: this many seconds after it (at least 60), its window is
# `missed` if no tick came (a daily job's silent cron service shows within minutes, not at the day's end).
RECONCILE_CALENDAR_GRACE_SECONDS = env.int("RECONCILE_CALENDAR_GRACE_SECONDS", default=300, minimum=60)
# The reconciler's own Inngest function (`reconcile-windows`) runs on this cron schedule; empty: not served.
RECONCILE_CRON = env.str("RECONCILE_CRON", default="*/5 * * * *")
# A window whose publish failed is re-published by the reconciler after 60 s, 120 s, 240 s, ...
# until it has made this many publish attempts in all; then it is left `dispatch_failed`.
RECONCILE_REPUBLISH_MAX_ATTEMPTS = env.int("RECONCILE_REPUBLISH_MAX_ATTEMPTS", default=5)
RECONCILE_REPUBLISH_BACKOFF_SECONDS = env.float("RECONCILE_REPUBLISH_BACKOFF_SECONDS", default=60.0)
# A function run without progress for longer than its bound is abandoned. By default the bound is
# INNGEST_STEP_BUDGET_SECONDS x its steps x its attempts; JSON {"cron-nightly-report": 7200} sets one.
RECONCILE_RUN_BOUNDS = env.str("RECONCILE_RUN_BOUNDS", default="{}")
# `run_jobs --loop` recovers expired leases and reconciles once at start, then this often.
WORKER_CHORE_INTERVAL_SECONDS = env.float("WORKER_CHORE_INTERVAL_SECONDS", default=300.0, above=0)

# --- Metrics (docs/operations.md, "Metrics") ------------------------------------
# The bearer token a Prometheus scrape sends to GET /metrics; unset with DEBUG off, /metrics answers 503.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# The directory where each process writes its event metrics (counters, histograms) for /metrics to add up:
# prometheus-client's multiprocess mode, which reads this variable itself. gunicorn.conf.py makes one for the
# web process when it is unset; a `run_jobs` worker on the same host shares it by the same variable.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="")
# Request metrics per view and database metrics (django-prometheus): off by default, since every request and
# every query then pays for a few metric updates.
METRICS_REQUESTS = env.bool("METRICS_REQUESTS", default=False)
if METRICS_REQUESTS:
    INSTALLED_APPS.append("django_prometheus")
    MIDDLEWARE = [
        "django_prometheus.middleware.PrometheusBeforeMiddleware",
        *MIDDLEWARE,
        "django_prometheus.middleware.PrometheusAfterMiddleware",
    ]
    # The same database, through django-prometheus' instrumented backend of the same engine.
    DATABASES["default"]["ENGINE"] = DATABASES["default"]["ENGINE"].replace(
        "django.db.backends.", "django_prometheus.db.backends."
    )

# --- SLO stop-gates (docs/operations.md) --------------------------------------
SLO_DISPATCH_P95_MS = env.float("SLO_DISPATCH_P95_MS", default=2000.0, above=0)
SLO_MAX_DUPLICATE_RUNS = env.int("SLO_MAX_DUPLICATE_RUNS", default=0, minimum=0)
SLO_MAX_QUEUE_LAG_SECONDS = env.float("SLO_MAX_QUEUE_LAG_SECONDS", default=300.0, minimum=0)
SLO_MAX_ENQUEUE_FAILURE_RATE = env.float("SLO_MAX_ENQUEUE_FAILURE_RATE", default=0.01, minimum=0)
SLO_MAX_MISSED_WINDOWS = env.int("SLO_MAX_MISSED_WINDOWS", default=0, minimum=0)
SLO_MAX_ABANDONED_RUNS = env.int("SLO_MAX_ABANDONED_RUNS", default=0, minimum=0)
SLO_MAX_STALE_PENDING = env.int("SLO_MAX_STALE_PENDING", default=0, minimum=0)
# p95 of how late the cron service's ticks came for their windows (their arrival minus the window's start).
SLO_MAX_TICK_LATENESS_SECONDS = env.float("SLO_MAX_TICK_LATENESS_SECONDS", default=60.0, minimum=0)
