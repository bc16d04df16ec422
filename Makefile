# meshlink.multicluster: the two commands of the README are `make demo` and `make test`.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
COLLECTION_LINK := .collections/ansible_collections/meshlink/multicluster
SANITY_ROOT := $(or $(TMPDIR),/tmp)/meshlink-sanity
LAB := tests/lab/lab
export ANSIBLE_COLLECTIONS_PATH := $(CURDIR)/.collections:$(HOME)/.ansible/collections
export MESHLINK_LAB_KUBECONFIG := $(CURDIR)/tests/lab/state/kubeconfig

.PHONY: help venv collection-link unit sanity lint lab-up lab-down integration test bench demo demo-down clean

help:
	@echo "make demo       lab up, setup.yml + verify.yml on the lab, print httpbin /ip from cluster1's sleep pod"
	@echo "make test       unit tests, ansible-test sanity, ansible-lint, the end-to-end suite on the lab"
	@echo "make demo-down  stop the lab"
	@echo "make bench      benchmarks/run.py: setup.yml against the kubectl loop and the per-object playbook (BENCH_ARGS=--quick)"

$(BIN)/python:
	$(PY) -m venv $(VENV) || python3 -m venv $(VENV)

# requirements-dev.txt includes requirements.txt (the run-time needs the collection ships):
# a change of either reinstalls.
$(VENV)/.requirements.stamp: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --disable-pip-version-check -q -r requirements-dev.txt
	touch $@

venv: $(VENV)/.requirements.stamp collection-link

# A checkout is usable as the installed collection through this link (ansible.cfg and
# ANSIBLE_COLLECTIONS_PATH point at .collections).
collection-link:
	@mkdir -p $(dir $(COLLECTION_LINK))
	@ln -sfn ../../.. $(COLLECTION_LINK)

unit: venv
	$(BIN)/pytest -q -p no:cacheprovider tests/unit tests/lab/unit benchmarks/tests

# ansible-test needs the collection at ansible_collections/<ns>/<name>; sanity runs on what
# `ansible-galaxy collection build` ships (the lab and the e2e suite are build_ignore'd in galaxy.yml).
PIP_BOOTSTRAP_VERSION = $(shell $(BIN)/python -c "from ansible_test._internal.python_requirements import get_venv_packages; from ansible_test._internal.host_configs import NativePythonConfig; print(get_venv_packages(NativePythonConfig(version='3.11'))['pip'].replace('.', '_'))" 2>/dev/null || echo 24_2)

sanity: venv
	mkdir -p $(HOME)/.ansible/test/cache
	cp tests/sanity/pip_bootstrap.py $(HOME)/.ansible/test/cache/get_pip_$(PIP_BOOTSTRAP_VERSION).py
	rm -rf $(SANITY_ROOT) && mkdir -p $(SANITY_ROOT)/ansible_collections/meshlink/multicluster
	rsync -a --exclude .venv --exclude .git --exclude .collections --exclude tests/lab \
	  --exclude tests/integration --exclude tests/output --exclude '__pycache__' --exclude benchmarks \
	  ./ $(SANITY_ROOT)/ansible_collections/meshlink/multicluster/
	cd $(SANITY_ROOT)/ansible_collections/meshlink/multicluster && git init -q && git add -A && \
	  PATH=$(CURDIR)/$(BIN):$$PATH $(CURDIR)/$(BIN)/ansible-test sanity --venv --python 3.11 --color no

lint: venv
	PATH=$(CURDIR)/$(BIN):$$PATH $(BIN)/ansible-lint --profile production

lab-up: venv
	$(LAB) up

# Also the current-Istio suite's own lab (its fixture stops it; this catches an interrupted run).
lab-down:
	@if [ -x $(BIN)/python ]; then $(LAB) down; \
	  if [ -d tests/lab/state-current ]; then LAB_STATE_DIR=$(CURDIR)/tests/lab/state-current $(LAB) down; fi; fi

integration: venv
	$(BIN)/pytest -q -p no:cacheprovider tests/integration

# The lab's Go builds (cached per version in ~/.cache/meshlink-lab; minutes on a cold cache)
# run in the background beside unit, sanity and lint; the end-to-end suite waits for them.
LAB_BUILD_LOG := $(or $(TMPDIR),/tmp)/meshlink-lab-build.log
test: venv
	@echo "lab build in the background (log: $(LAB_BUILD_LOG)); unit, sanity and lint meanwhile"
	@$(LAB) build > $(LAB_BUILD_LOG) 2>&1 & build=$$!; \
	  checks=0; $(MAKE) --no-print-directory unit sanity lint || checks=$$?; \
	  built=0; wait $$build || built=$$?; \
	  grep -h "built in\|failed" $(LAB_BUILD_LOG) || true; \
	  if [ $$built -ne 0 ]; then echo "lab build failed (rc=$$built):"; tail -30 $(LAB_BUILD_LOG); exit 1; fi; \
	  exit $$checks
	$(MAKE) --no-print-directory integration

# Figures, not assertions: benchmarks/README.md. Runs on its own lab (/tmp/meshlink-bench-lab,
# address index 20), never the e2e lab; ~80 min on 2 cores (BENCH_ARGS=--quick: ~25 min).
BENCH_ARGS ?=
bench: venv
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

demo: venv lab-up
	$(BIN)/ansible-playbook -i inventories/lab playbooks/setup.yml
	$(BIN)/ansible-playbook -i inventories/lab playbooks/verify.yml
	@echo "--- seed step 5: curl httpbin.bar.global:8000/ip from cluster1's sleep pod"
	@pod=$$($(LAB) kubectl --context cluster1 get -n foo pod -l app=sleep -o jsonpath='{.items[0].metadata.name}'); \
	  echo "$$ kubectl exec --context=cluster1 $$pod -n foo -c sleep -- curl -sS httpbin.bar.global:8000/ip"; \
	  $(LAB) kubectl --context cluster1 exec $$pod -n foo -c sleep -- curl -sS httpbin.bar.global:8000/ip

demo-down: lab-down

clean: lab-down
	rm -rf .collections $(SANITY_ROOT) tests/output
