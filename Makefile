# rsg-operator developer entry points. `make demo` and `make test` are the two README
# commands; both install what they need (virtualenv, control-plane binaries) on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements-dev.lock | cksum | cut -d' ' -f1)
# The control-plane binaries live in a cache outside the repository (see hack/).
CONTROL_PLANE_BIN = $(shell bash hack/build-control-plane.sh)
# The pinned helm, built the same way (tests of the chart in deploy/).
HELM = $(shell bash hack/build-helm.sh)
DEMO_APPLY := --apply crds \
	--apply examples/demo/00-namespace.yaml \
	--apply examples/demo/10-rolebasedgroup-crd.yaml \
	--apply examples/demo/20-workloads.yaml \
	--apply ai=examples/group-replication.yaml \
	--apply ai=examples/inplace-scaling.yaml

.PHONY: install lock image control-plane cluster demo test lint unit integration bench bench-faults bench-foreign bench-grove clean

install: $(STAMP)

# Dependencies come from the lock (exact versions and hashes: kopf behaves differently
# across minor versions), the package itself from the tree.
$(STAMP): pyproject.toml requirements-dev.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet --require-hashes -r requirements-dev.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

## Re-resolve the locks after a change of pyproject.toml's dependencies.
lock:
	test -x $(VENV)-lock/bin/pip-compile || ($(PYTHON) -m venv $(VENV)-lock && $(VENV)-lock/bin/pip install --quiet pip-tools)
	$(VENV)-lock/bin/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe -o requirements.lock pyproject.toml
	$(VENV)-lock/bin/pip-compile --quiet --generate-hashes --strip-extras --allow-unsafe --extra test -o requirements-dev.lock pyproject.toml

## The container image (needs docker or podman; this repository's CI has neither).
IMAGE ?= rsg-operator:$(shell sed -nE 's/^version = "(.*)"/\1/p' pyproject.toml)
ENGINE ?= $(shell command -v docker || command -v podman)
image:
	@test -n "$(ENGINE)" || { echo "make image: no container engine (docker or podman) found" >&2; exit 1; }
	$(ENGINE) build -t $(IMAGE) .

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
	RSG_CONTROL_PLANE_BIN="$(CONTROL_PLANE_BIN)" RSG_HELM="$(HELM)" $(BIN)/pytest tests

lint: install
	$(BIN)/ruff check rsg_operator tests bench examples
	$(BIN)/ruff format --check rsg_operator tests bench examples
	$(BIN)/mypy rsg_operator
	$(BIN)/lint-imports

unit: install
	$(BIN)/pytest tests/unit

integration: install
	RSG_CONTROL_PLANE_BIN="$(CONTROL_PLANE_BIN)" RSG_HELM="$(HELM)" $(BIN)/pytest tests/integration

## Scale figures (docs/benchmarks.md): N RSGs on a fresh local control plane each.
bench: install
	RSG_CONTROL_PLANE_BIN="$(CONTROL_PLANE_BIN)" $(BIN)/python bench/scale.py

## Fault trials (docs/reliability.md): the operator killed at random points of group changes.
bench-faults: install
	RSG_CONTROL_PLANE_BIN="$(CONTROL_PLANE_BIN)" $(BIN)/python bench/faults.py

## The operator beside 20,000 other Deployments and 5,000 ConfigMaps (docs/benchmarks.md).
bench-foreign: install
	RSG_CONTROL_PLANE_BIN="$(CONTROL_PLANE_BIN)" $(BIN)/python bench/foreign.py

## Grove's scale scenarios (0 -> 500 -> 250 -> 500 -> 0 groups on kwok nodes), beside a plain client.
bench-grove: install
	RSG_CONTROL_PLANE_BIN="$(CONTROL_PLANE_BIN)" $(BIN)/python bench/grove.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
