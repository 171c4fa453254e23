# RideEase Reco. Two commands set everything up on a fresh machine: `make run` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
# Tools import the settings module; a fixed key is enough for linting and type checking.
TOOL_ENV := DJANGO_SECRET_KEY=lint-and-type-check-only

.PHONY: run test bench bench-data schema install install-dev system-deps lint typecheck pytest clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip==26.3

$(VENV)/.installed-app: requirements.txt requirements-local.txt | $(PY)
	$(PIP) install --quiet -r requirements.txt -r requirements-local.txt
	touch $@

$(VENV)/.installed-dev: requirements.txt requirements-local.txt requirements-spark.txt requirements-dev.txt | $(PY)
	$(PIP) install --quiet -r requirements-dev.txt
	touch $(VENV)/.installed-app $@

APT_INSTALL := apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq
GRAFANA_SCHEMA := tests/monitoring/grafana_schema

# System packages the tests drive: Debian's Chromium for the admin's browser test (never a downloaded browser),
# Prometheus and promtool for the alert rules and the scrape test, Node for Grafana's dashboard schema, podman (with
# runc, and debootstrap for a local base image) to build and run the container images, a Java 17 runtime for the
# trainer's Spark engine.
system-deps: $(GRAFANA_SCHEMA)/node_modules/.package-lock.json
	@command -v java >/dev/null || ($(APT_INSTALL) openjdk-17-jre-headless)
	@command -v chromium >/dev/null || ($(APT_INSTALL) chromium)
	@command -v promtool >/dev/null || ($(APT_INSTALL) prometheus)
	@command -v podman >/dev/null && command -v runc >/dev/null && command -v debootstrap >/dev/null \
		|| ($(APT_INSTALL) podman runc debootstrap)

$(GRAFANA_SCHEMA)/node_modules/.package-lock.json: $(GRAFANA_SCHEMA)/package-lock.json
	@command -v npm >/dev/null || ($(APT_INSTALL) nodejs npm)
	npm ci --prefix $(GRAFANA_SCHEMA) --no-audit --no-fund --loglevel=error

install: $(VENV)/.installed-app
install-dev: $(VENV)/.installed-dev system-deps

## make run: install, start the embedded database (unless MONGODB_URI is set), migrate, seed, serve on HOST:PORT.
run: install
	exec $(PY) -m rideease.launcher

## make test: install what the tests need, then lint (with the import layers of docs/ARCHITECTURE.md), type-check and
## run the whole suite.
test: install-dev lint typecheck pytest

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports --no-logo

typecheck: install-dev
	$(TOOL_ENV) $(VENV)/bin/mypy rideease experiments recommendations tracing registry monitoring common core

pytest: install-dev
	$(PY) -m pytest --durations=20

## make bench: bulk ingest vs insert_many, training vs a bare scan, peak memory, scoring latency, serving under load,
## the phase summary's looks against a rebuild, the served recommenders on MovieLens, the Spark engine against the
## single-machine trainer (quality, and 1M vs 4M events); writes docs/BENCHMARKS.md.
bench: install-dev bench-data
	command -v hey >/dev/null || ($(APT_INSTALL) hey)
	$(PY) tests/benchmarks/bench_training.py
	$(PY) tests/benchmarks/bench_ingest.py
	$(PY) tests/benchmarks/bench_serving.py
	$(PY) tests/benchmarks/bench_summary.py
	$(PY) tests/benchmarks/bench_rollups.py
	$(PY) tests/benchmarks/bench_experiments.py
	$(PY) tests/benchmarks/bench_movielens.py
	$(PY) tests/benchmarks/bench_spark.py

MOVIELENS_CSV := var/datasets/movielens-r-cran-dslabs.csv

## make bench-data: the public data the benchmarks read, fetched once into var/datasets/: MovieLens "latest small"
## from Debian's r-cran-dslabs (apt-get download, dpkg-deb -x, read without R), kept as a CSV.
bench-data: $(MOVIELENS_CSV)

$(MOVIELENS_CSV): | $(VENV)/.installed-dev
	$(PY) tests/benchmarks/movielens.py

## make schema: regenerate docs/openapi.yaml from the code (a test fails while the two differ).
schema: install-dev
	$(TOOL_ENV) $(PY) manage.py spectacular --validate --fail-on-warn --file docs/openapi.yaml

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
