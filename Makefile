# Quick start:  make run   (install + start on http://127.0.0.1:8080, auth off for local use)
#               make test  (install + run the test suite)
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8080

.PHONY: install run test lint check soak bench

$(BIN)/ketamine-cds: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $@

install: $(BIN)/ketamine-cds

run: install
	KETAMINE_CDS_AUTH=off $(BIN)/ketamine-cds serve --host $(HOST) --port $(PORT)

test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check cds_service tests benchmarks scripts fhir_fixtures
	$(BIN)/mypy

check: lint test

soak: install
	$(BIN)/python scripts/soak.py

bench: install
	$(BIN)/python -m benchmarks.run
