# Rapport: `make run` sets up and starts the app; `make test` sets up and runs the tests.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.lock 2>/dev/null | cksum | cut -d' ' -f1)

.PHONY: setup run test test-fast test-e2e lint format bench openapi messages clean

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Rapport needs Python >= 3.11")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c requirements.lock -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

setup: $(STAMP)

run: setup
	$(BIN)/rapport run

test: setup
	@scripts/ensure-browser || true
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -m "not e2e" $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src
	$(BIN)/rapport makemigrations --check --dry-run
	$(BIN)/rapport openapi --check docs/openapi.json

format: setup
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

openapi: setup
	$(BIN)/rapport openapi --write docs/openapi.json

messages: setup
	cd src/rapport && ../../$(BIN)/rapport makemessages -l ru -l ar -l az -l it --no-obsolete --no-location
	cd src/rapport && ../../$(BIN)/rapport compilemessages

bench: setup
	$(BIN)/rapport bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var build src/*.egg-info
