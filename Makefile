# Two commands on a fresh machine:  `make demo`  and  `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Two stamps in one venv: `make demo` needs only the runtime (no torch, no CUDA wheels);
# `make test` adds the operator, the test stack and torch on top.
RUNTIME_STAMP := $(VENV)/.arcx-runtime
STAMP := $(VENV)/.arcx-installed
# SAELens and the packages it needs beyond the test venv (requirements-saelens.txt), in an
# overlay put on PYTHONPATH only by the SAELens tests' subprocess; reinstalled when a pin
# changes, so CI's cached venv keeps it between runs.
SAELENS := $(VENV)/saelens
SAELENS_STAMP := $(SAELENS)/.installed

.PHONY: setup system tools images demo test test-fast lint format clean kind-e2e saelens

$(RUNTIME_STAMP): constraints.txt store/pyproject.toml job_image/pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt -e store -e 'job_image[report]'
	touch $@

$(STAMP): $(RUNTIME_STAMP) requirements-dev.txt operator/pyproject.toml
	$(BIN)/pip install -q -c constraints.txt -e store -e 'job_image[report]' -e operator -r requirements-dev.txt
	touch $@

# Checks the system tools the tests need (Go, util-linux) and installs the real test
# node's Debian packages (containerd, runc, CNI plugins, iptables, nftables, debootstrap).
system:
	bash hack/setup-system.sh

# Go-built test tools (kube-apiserver, controller-manager, scheduler, kubelet, kube-proxy,
# CoreDNS, JobSet, helm, fake-gcs-server), cached outside the work tree and reused.
tools:
	bash hack/tools/build.sh

# The real test node's images (pause, operator, job-cpu), assembled without a daemon and
# cached by the hash of their inputs (hack/cluster/images.py).
images: $(STAMP) system
	$(BIN)/python -m hack.cluster.images

setup: $(STAMP)

$(SAELENS_STAMP): $(STAMP) requirements-saelens.txt
	rm -rf $(SAELENS)
	$(BIN)/pip install -q --no-deps --target $(SAELENS) -r requirements-saelens.txt
	touch $@

saelens: $(SAELENS_STAMP)

demo: $(RUNTIME_STAMP)
	$(BIN)/arcx demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# Everything CI runs: system packages, tools, lint, then every test tier.
test: $(STAMP) $(SAELENS_STAMP) system tools images lint
	ARCX_SAELENS_PATH=$(SAELENS) $(BIN)/pytest

# Without the cluster and GCS tiers (no Go tools needed).
test-fast: $(STAMP) lint
	$(BIN)/pytest -m "not cluster and not gcs"

kind-e2e:
	bash hack/kind-e2e.sh

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
