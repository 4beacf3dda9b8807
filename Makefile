# tradebus front door. `make run` and `make test` set up .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
ARGS   ?=

.PHONY: run test bench up lint install clean schema

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip "setuptools>=68" wheel "Cython>=3.0" "numpy>=1.26"

# Reinstall when the build description or any Cython source changes.
$(STAMP): $(PY) pyproject.toml setup.py $(wildcard libs/tradebus/engine/*.pyx libs/tradebus/engine/*.pxd libs/tradebus/engine/include/*.h)
	$(PY) -m pip install --no-build-isolation -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(VENV)/bin/tradebus up $(ARGS)

up: run

test: $(STAMP)
	$(PY) -m pytest $(ARGS)

bench: $(STAMP)
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
