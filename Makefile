# Shequtong — the two commands are `make run` and `make test`; each installs what it needs.
SHELL := /bin/bash
PY ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
BUF := node_modules/.bin/buf

.PHONY: help env run test test-unit test-integration test-security test-resilience lint proto proto-check buf-lint fmt clean chart-test images bench bench-smoke seed-scale

help:
	@echo "make run    — the whole system on this machine (SQLite, embedded NATS, grid simulator, demo data)"
	@echo "make test   — unit, component and integration tests (PostgreSQL when reachable)"
	@echo "make lint   — ruff, mypy (kit), buf lint, contract drift check"
	@echo "make proto  — regenerate libs/contracts from proto/"

$(UV):
	$(PY) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(BIN)/python: $(UV) uv.lock pyproject.toml
	$(UV) sync --all-packages --all-groups --frozen --quiet --compile-bytecode
	@touch $(BIN)/python

env: $(BIN)/python

$(BUF): package-lock.json
	npm ci --no-audit --no-fund --silent

run: env
	$(BIN)/python tools/run.py

test: env proto-check
	$(BIN)/pytest -q $(PYTEST_ARGS)
	TEST_DATABASE=sqlite $(BIN)/pytest -q libs services $(PYTEST_ARGS)  # the services on make run's SQLite

test-unit: env
	$(BIN)/pytest -q libs services $(PYTEST_ARGS)

test-integration: env
	$(BIN)/pytest -q tests/integration $(PYTEST_ARGS)

test-security: env  ## BOLA matrix, token attacks, fuzzing, abuse, personal data (also part of `make test`)
	$(BIN)/pytest -q -s tests/security $(PYTEST_ARGS)

test-resilience: env  ## fault injection: kill -9 NATS and services mid-load, retried POSTs (slow; not in `make test`)
	SHEQUTONG_RESILIENCE=1 $(BIN)/pytest -q -s tests/resilience $(PYTEST_ARGS)

bench: env  ## the recorded benchmark run: raw baselines, then the journeys as ratios (quiet machine, ~30 min)
	$(BIN)/python -m bench.run --name $${BENCH_NAME:-recorded}

bench-smoke: env  ## the instruments checked quickly (short phases, low rates)
	$(BIN)/python -m bench.run --name smoke --quick

seed-scale: env  ## the Baoshan-scale data set through the services' own paths (SCALE=1.0 full, 0.01 in CI)
	$(BIN)/python -m bench.seed --scale $${SCALE:-1.0} --part-budget 1800 --out bench/results/seed-$${SCALE:-1.0}.json

chart-test: env  ## render, lint, validate (Kubernetes 1.30 schemas), cross-check and security-scan the chart
	$(BIN)/pytest -q tests/chart $(PYTEST_ARGS)

images: env  ## build every service image with one tag (default: the chart's appVersion); needs a Docker engine
	$(BIN)/python tools/chart_images.py build $(if $(REGISTRY),--registry $(REGISTRY)) $(if $(TAG),--tag $(TAG)) $(if $(PUSH),--push)

proto: env
	$(BIN)/python tools/genproto.py

proto-check: env
	$(BIN)/python tools/genproto.py --check

buf-lint: $(BUF)
	cd proto && ../$(BUF) lint

lint: env buf-lint proto-check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy libs/kit/src

fmt: env
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf var/ .pytest_cache .mypy_cache .ruff_cache
