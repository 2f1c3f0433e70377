# cnpg-mcp developer commands. `make dev` runs the system, `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: dev test lint typecheck unit integration reliability cluster cluster-down binaries system-deps crds venv clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

system-deps:
	@bash devcluster/install-system-deps.sh

binaries: system-deps
	@bash devcluster/build-binaries.sh >/dev/null

crds: venv
	$(BIN)/python -m cnpg_mcp_api.crdgen

lint: venv
	$(BIN)/ruff check .

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest tests/unit

integration: venv binaries
	$(BIN)/pytest tests/integration

# `make test` includes tests/reliability at its bounded scale; `make reliability` runs it at full scale.
test: system-deps venv binaries lint typecheck
	$(BIN)/pytest tests

reliability: system-deps venv binaries
	$(BIN)/pytest tests/reliability --reliability-scale=full

cluster: system-deps venv binaries
	$(BIN)/python -m devcluster up

cluster-down: venv
	$(BIN)/python -m devcluster down

dev: system-deps venv binaries
	$(BIN)/python -m devcluster dev

clean: cluster-down
	rm -rf $(VENV) .devcluster .mypy_cache .ruff_cache .pytest_cache
