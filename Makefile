# Two commands: `make dev` serves everything, `make test` passes the tests. Both set up .venv first.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
BENCH_STAMP := $(VENV)/.bench-stamp
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
	&& { echo $$p; break; }; done)

.PHONY: dev test test-all chaos lint schema bench bench-quick clean help

help:
	@echo "make dev       embedded PostgreSQL + Redis, migrations, demo data, API on :8000 and a worker"
	@echo "make test      lint, type-check and the test suite against real PostgreSQL and Redis"
	@echo "make test-all  the suite including slow load tests"
	@echo "make chaos     the chaos scenarios at full scale (make test runs a short version)"
	@echo "make schema    re-export schema/schema.graphql and the persisted operations' ids (schema/operations.json)"
	@echo "make bench     the flash-sale benchmark: rushcart vs a bare-Lua ceiling vs a row-lock baseline"

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "Python 3.11 or newer is required"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,embedded]'
	@touch $(STAMP)

dev: $(STAMP)
	$(BIN)/rushcart dev

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# The chaos scenarios kill and restart services, so they run after the suite with a stack of their own;
# then the order, payment and persistence tests again, the services behind a real PgBouncer; then the
# buying, cart and subscription tests and the chaos scenarios of a cluster again with the state on a
# 3-primary + 3-replica Valkey Cluster, every write confirmed by a replica (REDIS_WAIT_REPLICAS=1).
PGBOUNCER_TESTS = tests/server/test_pooler.py tests/resolvers/test_orders.py tests/jobs/test_order_persistence.py \
	tests/server/test_webhooks.py tests/db/test_payment_races.py tests/db/test_payment_groups.py \
	tests/db/test_order_races.py
CLUSTER_TESTS = tests/resolvers/test_orders.py tests/resolvers/test_carts.py tests/resolvers/test_subscriptions.py \
	tests/db/test_order_races.py tests/jobs/test_order_persistence.py
CLUSTER_CHAOS = tests/chaos/test_shard_failover.py tests/chaos/test_api_crash.py
CLUSTER_ENV = RUSHCART_TEST_CLUSTER=1 REDIS_WAIT_REPLICAS=1
test: lint
	$(BIN)/pytest $(PYTEST_ARGS)
	$(BIN)/pytest tests/chaos -m chaos $(PYTEST_ARGS)
	RUSHCART_TEST_POOLER=pgbouncer $(BIN)/pytest $(PGBOUNCER_TESTS) $(PYTEST_ARGS)
	$(CLUSTER_ENV) $(BIN)/pytest $(CLUSTER_TESTS) $(PYTEST_ARGS)
	$(CLUSTER_ENV) $(BIN)/pytest $(CLUSTER_CHAOS) -m chaos $(PYTEST_ARGS)

chaos: $(STAMP)
	CHAOS_SCALE=full $(BIN)/pytest tests/chaos -m chaos $(PYTEST_ARGS)
	CHAOS_SCALE=full $(CLUSTER_ENV) $(BIN)/pytest $(CLUSTER_CHAOS) -m chaos $(PYTEST_ARGS)

test-all: lint
	$(BIN)/pytest -m "" $(PYTEST_ARGS)

schema: $(STAMP)
	$(BIN)/python -c "import schema; open('schema/schema.graphql', 'w').write(schema.sdl())"
	$(BIN)/python -c "from schema import persisted; persisted.MANIFEST_FILE.write_text(persisted.manifest_json())"

# The benchmark's extra (matplotlib, for its plot) on top of the dev install; the suite never needs it.
$(BENCH_STAMP): pyproject.toml $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,embedded,bench]'
	@touch $(BENCH_STAMP)

# The flash-sale benchmark (bench/README.md): its own stack under .data/bench, ~2 minutes, then the
# cluster runs, ~1 minute each.
# Pass flags through BENCH_ARGS, e.g. make bench BENCH_ARGS="--rounds 3 --duration 10".
bench: $(BENCH_STAMP)
	$(BIN)/python -m bench.run $(BENCH_ARGS)
	$(BIN)/python -m bench.run $(BENCH_CLUSTER)
	$(BIN)/python -m bench.run $(BENCH_CLUSTER) --wait-replicas 1

# The same sale on a 3-primary + 3-replica cluster, without and with every order step confirmed by
# a replica: one product that does not sell out, so one shard is the hot one and every order counts.
BENCH_CLUSTER = --cluster --products 1 --stock 100000 --warmup 0 $(BENCH_ARGS)

# A smoke run of every variant in well under a minute; figures too short to quote.
bench-quick: $(BENCH_STAMP)
	$(BIN)/python -m bench.run --duration 4 --warmup 0.5 --buyers 40 --live 200 --live-duration 3 --payments 200 $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache
