# The project's vocabulary: setup, run, test, lint, bench, deploy. See README.md.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DRY_RUN ?=

.PHONY: setup system-deps node-deps run test lint bench deploy playbook clean

setup: system-deps node-deps $(STAMP)

# System packages the tests and the local stack need, installed only when missing.
system-deps:
	@bash scripts/system-deps.sh

# Node tools (Firebase Auth emulator for the auth tests), installed only when missing.
node-deps:
	@if [ -f scripts/node-deps.sh ]; then bash scripts/node-deps.sh; fi

# The project is not a package: a .pth puts its root on the venv's path, so `chaos run` and
# `python -m ...` find `shared` from any directory.
$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	echo "$(CURDIR)" > "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/resilience-chaos.pth"
	touch $(STAMP)

run: setup
	$(PY) -m scripts.run_local

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

bench: setup
	@bash scripts/system-deps.sh --bench
	$(PY) -m bench

STEP ?= deploy
PERCENT ?=
FUNCTIONS ?=
# Blue/green deploy of the functions (PROJECT required; DRY_RUN=1 prints every command):
#   make deploy PROJECT=my-proj [STEP=deploy|shift|promote|rollback] [PERCENT=10] [FUNCTIONS=chaos_proxy]
deploy: setup
	$(PY) -m scripts.deploy $(if $(DRY_RUN),--dry-run,) $(STEP) \
		$(if $(PERCENT),--percent $(PERCENT),) $(FUNCTIONS)

PLAYBOOK ?= llm-down
VARS ?=
REHEARSAL ?=
# Run a Chaos Toolkit playbook against the local stack (`make run` in another terminal):
#   make playbook PLAYBOOK=llm-down [REHEARSAL=1] [VARS="load_s:float=5"] [DRY_RUN=1]
# (REHEARSAL=1 sets PLAYBOOK_REHEARSAL=1: the playbook's own short setting.)
# Exit: chaos validate's failure is make's "Error 2" (invalid playbook), chaos run's is
# "Error 1" (deviated, failed or interrupted: see the journal). DRY_RUN=1 (or a --dry mode)
# writes .local/journal-<name>.dry.json, never the last real journal.
playbook: setup
	@mkdir -p .local
	@PYTHONPATH=$(CURDIR) $(VENV)/bin/chaos --no-version-check --log-file .local/chaostoolkit.log validate \
		playbooks/$(PLAYBOOK).yaml >/dev/null || exit 2
	PYTHONPATH=$(CURDIR) $(if $(REHEARSAL),PLAYBOOK_REHEARSAL=1,) \
		$(VENV)/bin/chaos --no-version-check --log-file .local/chaostoolkit.log run \
		$(foreach v,$(VARS),--var $(v)) \
		$(if $(DRY_RUN),--dry $(if $(filter 1 true yes,$(DRY_RUN)),activities,$(DRY_RUN)),) \
		--journal-path .local/journal-$(PLAYBOOK)$(if $(DRY_RUN),.dry,).json \
		playbooks/$(PLAYBOOK).yaml

clean:
	rm -rf $(VENV) build .mypy_cache .ruff_cache
