# Two commands do all the set-up on a fresh machine (see README.md):
#   make demo   - install, migrate, enqueue demo jobs, tick twice (the second a duplicate), say what happened
#   make test   - install and run the test suite (needs PostgreSQL and Redis on 127.0.0.1)
PYTHON ?= python3
PORT ?= 8000
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

BENCH_VENV := .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed

.PHONY: install demo serve superuser test lint bench clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

demo: $(STAMP)
	@$(BIN)/python manage.py migrate --noinput -v0
	@LOG_LEVEL=WARNING $(BIN)/python manage.py demo

# PORT=8001 make serve (or make serve PORT=8001) serves on another port.
serve: $(STAMP)
	$(BIN)/python manage.py migrate --noinput -v0
	$(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

# Asks for a username, an email and a password; with DJANGO_SUPERUSER_USERNAME, DJANGO_SUPERUSER_EMAIL and
# DJANGO_SUPERUSER_PASSWORD set, asks nothing (Django's createsuperuser --noinput).
superuser: $(STAMP)
	@$(BIN)/python manage.py migrate --noinput -v0
	$(BIN)/python manage.py createsuperuser$(if $(DJANGO_SUPERUSER_USERNAME), --noinput)

# The admin's browser test drives Debian's chromium (never a downloaded browser).
test: $(STAMP)
	@command -v chromium >/dev/null || [ -n "$$ORCHESTRATOR_SKIP_BROWSER" ] || \
		{ echo "chromium is missing: installing Debian's package"; apt-get update -qq && apt-get install -y -qq chromium; }
	$(BIN)/python -m pytest

# Benchmarks (under 10 minutes; needs wrk and pgbench, and owns scratch databases orch_bench_*).
# bench/requirements.txt adds the peer queues (pgqueuer, Procrastinate) to the bench virtualenv only.
$(BENCH_STAMP): requirements.txt bench/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/pip install --quiet -r bench/requirements.txt
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	@command -v wrk >/dev/null || apt-get install -y wrk
	$(BENCH_VENV)/bin/python bench/run.py

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports

clean:
	rm -rf $(VENV) $(BENCH_VENV) db.sqlite3 db.sqlite3-wal db.sqlite3-shm .mypy_cache .ruff_cache .pytest_cache .import_linter_cache
