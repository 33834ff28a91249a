# Every target sets up what it needs: uv (into .tools/ when it is not on PATH), the
# virtualenv and the locked dependencies. Servers come from devkit.localservers.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

UV_VERSION := 0.13.9
export UV_PYTHON_DOWNLOADS := never
PORT ?= 8000
export PORT

# uv on PATH if it works, else our own copy in .tools/ (made by the rule below).
UV := $(shell uv --version >/dev/null 2>&1 && command -v uv || echo .tools/bin/uv)

.PHONY: help sync run test stack stop status lint migrate bench clean distclean

help:
	@echo "make run      the whole system in one process on http://127.0.0.1:$(PORT) (SQLite, in-process bus)"
	@echo "make test     the full suite against a real PostgreSQL and Kafka it starts itself"
	@echo "make stack    separate processes on PostgreSQL and Kafka; writes var/stack.env"
	@echo "make stop     stop everything make stack started"
	@echo "make status   what the stack is running"
	@echo "make lint     ruff"
	@echo "make migrate  bring the embedded SQLite databases under var/ to head"
	@echo "make bench    run bench/*.py"
	@echo "make clean    stop the stack, remove var/ and caches (keeps .venv and the Kafka jars)"

.tools/bin/uv:
	@echo "uv is not on PATH: installing uv $(UV_VERSION) into .tools/"
	@python3 -m venv .tools || { echo "python3 -m venv failed: install python3-venv, or uv itself (https://docs.astral.sh/uv/)"; exit 1; }
	@.tools/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

sync: | $(UV)
	@$(UV) sync --all-packages --frozen --quiet

run: sync
	$(UV) run python -m gateway

test: sync
	@scripts/check-kafka-tools.sh TEST_KAFKA_BOOTSTRAP
	$(UV) run pytest $(PYTEST_ARGS)

stack: sync
	@scripts/check-kafka-tools.sh STACK_KAFKA_BOOTSTRAP
	$(UV) run python -m devkit.stack up

stop: sync
	$(UV) run python -m devkit.stack down

status: sync
	@$(UV) run python -m devkit.stack status

lint: sync
	$(UV) run ruff check .

migrate: sync
	$(UV) run python -m gateway migrate

bench: sync
	@shopt -s nullglob; benches=(bench/[!_]*.py); \
	if (( $${#benches[@]} == 0 )); then echo "no benchmarks yet (bench/*.py)"; fi; \
	for bench in "$${benches[@]}"; do echo "== $$bench"; $(UV) run python "$$bench"; done

clean:
	@if [[ -f var/stack/pids.json ]]; then $(MAKE) --no-print-directory stop; fi
	rm -rf var .pytest_cache .ruff_cache .hypothesis
	find . \( -path ./.venv -o -path ./.tools -o -path ./.cache -o -path ./.git \) -prune \
		-o -name __pycache__ -type d -prune -exec rm -rf {} +

distclean: clean
	rm -rf .venv .tools .cache
