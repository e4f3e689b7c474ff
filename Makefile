# rsg-operator developer entry points. `make demo` and `make test` are the two README
# commands; both install what they need (virtualenv, control-plane binaries) on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)
# The control-plane binaries live in a cache outside the repository (see hack/).
CONTROL_PLANE_BIN = $(shell bash hack/build-control-plane.sh)
DEMO_APPLY := --apply crds \
	--apply examples/demo/00-namespace.yaml \
	--apply examples/demo/10-rolebasedgroup-crd.yaml \
	--apply examples/demo/20-workloads.yaml \
	--apply ai=examples/group-replication.yaml \
	--apply ai=examples/inplace-scaling.yaml

.PHONY: install control-plane cluster demo test lint unit integration bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

control-plane:
	@bash hack/build-control-plane.sh

## Start the local control plane (etcd, kube-apiserver, kube-controller-manager) alone.
cluster: install
	$(BIN)/rsg-operator cluster --control-plane-bin "$(CONTROL_PLANE_BIN)" --apply crds

## Run the operator; with no cluster configured, on the local control plane with the examples.
demo: install
	$(BIN)/rsg-operator run --control-plane-bin "$(CONTROL_PLANE_BIN)" $(DEMO_APPLY)

## Everything CI runs: lint, types, then unit and integration tests (real control plane).
test: lint
	RSG_CONTROL_PLANE_BIN="$(CONTROL_PLANE_BIN)" $(BIN)/pytest tests

lint: install
	$(BIN)/ruff check rsg_operator tests bench
	$(BIN)/ruff format --check rsg_operator tests bench
	$(BIN)/mypy rsg_operator
	$(BIN)/lint-imports

unit: install
	$(BIN)/pytest tests/unit

integration: install
	RSG_CONTROL_PLANE_BIN="$(CONTROL_PLANE_BIN)" $(BIN)/pytest tests/integration

## Scale figures (docs/benchmarks.md): N RSGs on a fresh local control plane each.
bench: install
	RSG_CONTROL_PLANE_BIN="$(CONTROL_PLANE_BIN)" $(BIN)/python bench/scale.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
