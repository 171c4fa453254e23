# RideEase Reco. Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Tools import the settings module; a fixed key is enough for linting and type checking.
TOOL_ENV := DJANGO_SECRET_KEY=lint-and-type-check-only

.PHONY: run test bench install install-dev system-deps lint typecheck pytest clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip==26.3

$(VENV)/.installed-app: requirements.txt requirements-local.txt | $(PY)
	$(PIP) install --quiet -r requirements.txt -r requirements-local.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-local.txt requirements-dev.txt | $(PY)
	$(PIP) install --quiet -r requirements-dev.txt
	touch $(VENV)/.installed-app $@

# System packages the tests drive: Debian's Chromium for the admin's browser test (never a downloaded browser).
system-deps:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)

install: $(VENV)/.installed-app
install-dev: $(VENV)/.installed-dev system-deps

## make run: install, start the embedded database (unless MONGODB_URI is set), migrate, seed, serve on HOST:PORT.
run: install
	exec $(PY) -m rideease.launcher

## make test: install what the tests need, then lint, type-check and run the whole suite.
test: install-dev lint typecheck pytest

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: install-dev
	$(TOOL_ENV) $(VENV)/bin/mypy rideease recommendations registry experiments tracing monitoring

pytest: install-dev
	$(PY) -m pytest

## make bench: training vs a bare scan, peak memory, scoring latency, serving under load; writes docs/BENCHMARKS.md.
bench: install-dev
	command -v hey >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hey)
	$(PY) tests/benchmarks/bench_training.py
	$(PY) tests/benchmarks/bench_serving.py
	$(PY) tests/benchmarks/bench_summary.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
