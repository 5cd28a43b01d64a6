# Two commands do all the set-up on a fresh machine (see README.md):
#   make demo   - install, migrate, enqueue demo jobs, run one tick, print the summary
#   make test   - install and run the test suite (needs PostgreSQL and Redis on 127.0.0.1)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo serve superuser test lint clean

install: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

demo: $(STAMP)
	@$(BIN)/python manage.py migrate --noinput -v0
	@$(BIN)/python manage.py enqueue_job demo.echo --count 3 --payload '{"message": "hello from the demo"}'
	@$(BIN)/python manage.py enqueue_job demo.sleep --payload '{"seconds": 0.2}'
	@$(BIN)/python manage.py enqueue_job demo.fail --max-attempts 1
	@echo "--- one tick of background-jobs (inline mode: nothing is configured) ---"
	@LOG_LEVEL=WARNING $(BIN)/python manage.py dispatch_tick background-jobs
	@echo "--- done. Serve it with: make serve (admin: make superuser, then http://127.0.0.1:8000/admin/) ---"

serve: $(STAMP)
	$(BIN)/python manage.py migrate --noinput -v0
	$(BIN)/python manage.py runserver 127.0.0.1:8000

superuser: $(STAMP)
	$(BIN)/python manage.py createsuperuser

test: $(STAMP)
	$(BIN)/python -m pytest

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

clean:
	rm -rf $(VENV) db.sqlite3 db.sqlite3-wal db.sqlite3-shm .mypy_cache .ruff_cache .pytest_cache
