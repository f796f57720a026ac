# The commands of the README:
#   make demo   set up and run the local batch on the bundled samples with the bundled model:
#               the CPU worker only (onnxruntime, numpy, Pillow; no torch, no CUDA libraries)
#   make stack  the queue path on this machine: Google's Pub/Sub emulator, a local GCS and a
#               worker (then, in another shell: source out/stack.env; cutq submit samples/ --wait)
#   make test   set up and run every test (what .ci/run calls)
# and, by hand, never in CI: make mutate  (mutation testing of the core, 6-15 min; tools/mutate.py)
# `make test` installs torch with an explicit pin first, so pip never picks a multi-GB build by
# accident; override with e.g. `make test TORCH="torch==2.13.0"`.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARCH := $(shell uname -m)
ifeq ($(ARCH),aarch64)
TORCH ?= torch==2.9.1 torchvision==0.24.1
else
TORCH ?= torch==2.14.1 torchvision==0.29.1
endif
OUT ?= out/demo
PIP := $(BIN)/pip install --disable-pip-version-check -q

.PHONY: demo stack test lint bench clean mutate

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

# The CPU worker: what `make demo` needs and nothing more.
$(VENV)/.cpu: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[cpu]'
	touch $@

$(VENV)/.torch: | $(BIN)/python
	$(PIP) $(TORCH)
	touch $@

$(VENV)/.dev: pyproject.toml $(VENV)/.torch
	$(PIP) -e '.[dev]'
	touch $@ $(VENV)/.cpu $(VENV)/.stack

demo: $(VENV)/.cpu
	$(BIN)/cutq run samples --out $(OUT)

# The stack: the CPU worker (onnxruntime) and the local GCS, no torch and no dev extra.
$(VENV)/.stack: pyproject.toml | $(BIN)/python
	$(PIP) -e '.[stack]'
	touch $@

stack: $(VENV)/.stack
	$(BIN)/python -m tools.stack

# lint-imports reads the package as installed (the editable install's import hook hides it
# from grimp): a throwaway non-editable copy under .cache/imports.
lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	rm -rf .cache/imports
	$(PIP) --no-deps --target .cache/imports .
	cd .cache/imports && PYTHONPATH=. $(abspath $(BIN))/lint-imports $(CURDIR)/pyproject.toml

# checkov lives in its own venv: its pins conflict with pytest's (infra/scripts/install-checkov.sh)
test: lint
	PYTHON=$(PYTHON) bash infra/scripts/install-checkov.sh
	$(BIN)/python -m pytest

# Mutation testing (tools/mutate.py): mutmut in its own stamp, not in the dev extra, since CI
# never runs it. `make mutate MUTATE="settle"` runs the named groups only (tools/mutate.py).
MUTMUT ?= mutmut==3.8.1
MUTATE ?=

$(VENV)/.mutmut: $(VENV)/.dev
	$(PIP) $(MUTMUT)
	touch $@

mutate: $(VENV)/.mutmut
	$(BIN)/python tools/mutate.py $(MUTATE)

clean:
	rm -rf $(VENV) out .pytest_cache .ruff_cache .cache/checkov-venv

# The one-shot GPU check (tools/gpu_check.py): on a machine without a usable GPU a dry run
# at small sizes that lists what it skipped. On a bare GPU machine, after
# `python -m tools.gpu_check prepare [--onnxruntime-gpu]` here (the latter cut into parts that
# calls carry one by one: README "GPU"): python3 -m tools.gpu_check run --wheels out/gpu-check-wheels --out DIR
.PHONY: gpu-check
gpu-check: $(VENV)/.dev
	$(BIN)/python -m tools.gpu_check run --out out/gpu-check
