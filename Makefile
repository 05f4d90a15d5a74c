# Truy Vết: every target works on a fresh machine (it installs what it needs) and is idempotent.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test lint services-up services-down bench clean

$(STAMP): pyproject.toml
	bash deploy/local/install-system-packages.sh
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=25.1"
	$(PY) -m pip install -q -e . --group dev
	touch $(STAMP)

install: $(STAMP)

services-up: install
	$(VENV)/bin/truyvet up

services-down:
	@if [ -x $(VENV)/bin/truyvet ]; then $(VENV)/bin/truyvet down; fi

demo: install
	$(VENV)/bin/truyvet demo

test: install
	$(PY) tests/run_suite.py

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy ingest streams trace_api truyvet

bench: install
	$(PY) -m pytest tests/benchmarks -m benchmark -s

clean: services-down
	rm -rf .local
