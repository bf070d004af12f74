# Flightdeck: `make run` serves the dashboard, `make test` runs the whole suite.
# Both install what is missing first: Python packages into .venv, Debian's chromium for tests.

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
PIP := $(PY) -m pip --disable-pip-version-check --quiet

.PHONY: run test lint format bench screenshots browser clean help

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

run: $(RUNTIME_STAMP)
	$(PY) -m jobs.run

lint: $(DEV_STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy services

format: $(DEV_STAMP)
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

test: $(DEV_STAMP) browser lint
	$(PY) -m pytest

bench: $(DEV_STAMP)
	$(PY) -m bench.run
	$(PY) -m bench.drift

screenshots: $(DEV_STAMP) browser
	FLIGHTDECK_UPDATE_SCREENSHOTS=1 $(PY) -m pytest tests/e2e -k "screenshots or promotion"

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
