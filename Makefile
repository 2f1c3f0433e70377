# cnpg-mcp developer commands. `make dev` runs the system, `make test` runs every test.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: dev test lint typecheck unit integration reliability cluster cluster-down binaries helm system-deps crds tools-docs venv clean package image lint-dockerfile

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@# devcluster/ (sandbox, CNPG simulator) is not part of the package: make it importable in the dev venv
	@# only, so bench/ scripts and `python -m devcluster` work from anywhere.
	$(BIN)/python -c "import pathlib, sysconfig; pathlib.Path(sysconfig.get_paths()['purelib'], 'cnpg-mcp-dev.pth').write_text(pathlib.Path.cwd().as_posix() + chr(10))"
	touch $(STAMP)

venv: $(STAMP)

system-deps:
	@bash devcluster/install-system-deps.sh

binaries: system-deps
	@bash devcluster/build-binaries.sh >/dev/null

# Helm from its Go module, cached like the control plane (deploy/helm/ is tested with it).
helm:
	@bash devcluster/build-binaries.sh helm

# The wheel and sdist (product only: no devcluster, no tests), checked as PyPI would.
package: venv
	rm -rf dist
	$(BIN)/python -m build --outdir dist .
	$(BIN)/twine check --strict dist/*

lint-dockerfile: venv
	$(BIN)/hadolint Dockerfile

# Builds and smoke-tests the image where a container engine runs and can reach the base image.
IMAGE ?= cnpg-mcp:$(shell sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)
image: lint-dockerfile
	@docker info >/dev/null 2>&1 || { echo "make image: no container engine answers (docker info failed); the Dockerfile is linted only" >&2; exit 1; }
	docker build -t $(IMAGE) .
	docker run --rm $(IMAGE) cnpg-mcp-server --version
	docker run --rm $(IMAGE) cnpg-mcp-operator --version

# The Helm chart carries copies (Helm reads only its own folder); a test checks they match.
crds: venv
	$(BIN)/python -m cnpg_mcp_api.crdgen
	cp crds/pg*.yaml deploy/helm/cnpg-mcp/crds/
	cp deploy/operator/peering-crds.yaml deploy/helm/cnpg-mcp/crds/kopf-peering-crds.yaml

tools-docs: venv
	$(BIN)/python -m mcp_gateway.docgen

lint: venv
	$(BIN)/ruff check .

typecheck: venv
	$(BIN)/mypy

unit: venv
	$(BIN)/pytest tests/unit

integration: venv binaries helm
	$(BIN)/pytest tests/integration

# `make test` includes tests/reliability at its bounded scale; `make reliability` runs it at full scale.
test: system-deps venv binaries helm lint typecheck
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

# Figures, not tests: every benchmark against one sandbox, one table (docs/performance.md). About 10-15 min.
.PHONY: bench
BENCH_ARGS ?=
bench: system-deps venv binaries
	$(BIN)/python -m bench $(BENCH_ARGS)
