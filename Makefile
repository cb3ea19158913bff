# Two commands: `make dev` serves everything, `make test` passes the tests. Both set up .venv first.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { echo $$p; break; }; done)

.PHONY: dev test test-all lint schema bench clean help

help:
	@echo "make dev       embedded PostgreSQL + Redis, migrations, demo data, API on :8000 and a worker"
	@echo "make test      lint, type-check and the test suite against real PostgreSQL and Redis"
	@echo "make test-all  the suite including slow load tests"
	@echo "make schema    re-export schema/schema.graphql from the code"

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is required"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

dev: $(STAMP)
	$(BIN)/rushcart dev

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

test-all: lint
	$(BIN)/pytest -m "" $(PYTEST_ARGS)

schema: $(STAMP)
	$(BIN)/python -c "import schema; open('schema/schema.graphql', 'w').write(schema.sdl())"

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache
