# Flightdeck: `make run` serves the dashboard, `make test` runs the whole suite.
# Both install what is missing first: Python packages into .venv, Debian's chromium for tests.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
PIP := $(PY) -m pip --disable-pip-version-check --quiet

ENGINES := .engines
PREFECT_VENV := $(ENGINES)/prefect
AIRFLOW_VENV := $(ENGINES)/airflow
PREFECT_STAMP := $(PREFECT_VENV)/.installed
AIRFLOW_STAMP := $(AIRFLOW_VENV)/.installed

.PHONY: run test lint format bench screenshots browser nginx engines clean help

help:
	@echo "make run          start MLflow (embedded unless MLFLOW_TRACKING_URI is set) and the dashboard"
	@echo "make test         install what is missing, lint, and run the whole suite"
	@echo "make bench        benchmark against the raw MLflow client; writes bench/results*.md"
	@echo "make screenshots  refresh the README's screenshots under docs/"

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip

$(RUNTIME_STAMP): requirements.txt | $(VENV)/bin/python
	$(PIP) install -r requirements.txt
	touch $@

$(DEV_STAMP): requirements-dev.txt $(RUNTIME_STAMP)
	$(PIP) install -r requirements-dev.txt
	touch $@

# Debian's chromium drives the browser tests; Playwright's own download cannot run here.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "Installing Debian's chromium for the browser tests…"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else \
	    echo "chromium is missing: run 'sudo apt-get install -y chromium' (browser tests need it)"; exit 1; \
	  fi; }

# Debian's nginx runs the README's login-proxy configuration in a browser test.
nginx:
	@command -v nginx >/dev/null 2>&1 || test -x /usr/sbin/nginx || { \
	  if [ "$$(id -u)" = "0" ]; then \
	    echo "Installing Debian's nginx for the login-proxy test…"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx >/dev/null; \
	  else \
	    echo "nginx is missing: run 'sudo apt-get install -y nginx' (the login-proxy test needs it)"; exit 1; \
	  fi; }

run: $(RUNTIME_STAMP)
	$(PY) -m jobs.run

lint: $(DEV_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

format: $(DEV_STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# Retraining engines, each in its own venv (Prefect and Airflow disagree on fastapi), cached in
# the ignored .engines/ folder. make test builds them and requires them: no engine test skips.
# --- Prefect engine ---
$(PREFECT_STAMP): jobs/prefect-requirements.txt
	rm -rf $(PREFECT_VENV)
	$(PYTHON) -m venv $(PREFECT_VENV)
	$(PREFECT_VENV)/bin/python -m pip install --disable-pip-version-check --quiet -r $<
	touch $@

# Register the retraining deployment flightdeck-retrain/flightdeck-retrain on the `process` work
# pool `flightdeck` (created when missing), with this folder as its code location:
#   make prefect-deploy [PREFECT_API_URL=http://host:4200/api]
# then run a worker on this machine:
#   PREFECT_API_URL=... .engines/prefect/bin/prefect worker start --pool flightdeck --type process
# (no file of that name: it always runs)
PREFECT_API_URL ?= http://127.0.0.1:4200/api
prefect-deploy: $(PREFECT_STAMP)
	PREFECT_API_URL='$(PREFECT_API_URL)' $(PREFECT_VENV)/bin/python jobs/prefect_flow.py
# --- end Prefect engine ---

# --- Airflow engine ---
$(AIRFLOW_STAMP): jobs/airflow-requirements.txt
	rm -rf $(AIRFLOW_VENV)
	$(PYTHON) -m venv $(AIRFLOW_VENV)
	$(AIRFLOW_VENV)/bin/python -m pip install --disable-pip-version-check --quiet -r $<
	touch $@
# --- end Airflow engine ---

engines: $(PREFECT_STAMP) $(AIRFLOW_STAMP)

test: $(DEV_STAMP) browser nginx engines lint
	FLIGHTDECK_REQUIRE_ENGINES=1 $(PY) -m pytest

bench: $(DEV_STAMP)
	$(PY) -m bench.run
	$(PY) -m bench.drift
	$(PY) -m bench.pages

screenshots: $(DEV_STAMP) browser
	FLIGHTDECK_UPDATE_SCREENSHOTS=1 $(PY) -m pytest tests/e2e -k "screenshots or promotion or retraining"

clean:
	rm -rf $(VENV) $(ENGINES) .pytest_cache .mypy_cache .ruff_cache
