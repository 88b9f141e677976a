# Quick start:  make run   (install + start on http://127.0.0.1:8080, auth off for local use)
#               make test  (install + run the test suite)
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: install run test lint check soak bench lock

$(BIN)/ketamine-cds: pyproject.toml requirements/runtime-constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]' -c requirements/runtime-constraints.txt
	@touch $@

install: $(BIN)/ketamine-cds

run: install
	KETAMINE_CDS_AUTH=off $(BIN)/ketamine-cds serve --host $(HOST) --port $(PORT)

test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check cds_service tests benchmarks scripts fhir_fixtures
	$(BIN)/mypy
	$(BIN)/lint-imports

check: lint test

soak: install
	$(BIN)/python scripts/soak.py

bench: install
	$(BIN)/python -m benchmarks.run

# Re-pin requirements/runtime-constraints.txt to the newest versions pyproject.toml allows (needs PyPI).
lock:
	rm -rf build/lock-venv && python3.11 -m venv build/lock-venv
	build/lock-venv/bin/pip install --quiet .
	{ sed '/^[^#]/,$$d' requirements/runtime-constraints.txt; build/lock-venv/bin/pip freeze --exclude ketamine-cds; } > build/runtime-constraints.txt
	mv build/runtime-constraints.txt requirements/runtime-constraints.txt
