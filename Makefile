# Benchkit: `make run` measures the default sweep on this machine; `make test` runs the test suite.
PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
TORCH_SPEC ?= torch==$(TORCH_VERSION)
PARAMS ?= parameters/default.yaml
PYTEST_ARGS ?=
BIN := $(VENV)/bin
STAMP := $(VENV)/.benchkit-installed

.DEFAULT_GOAL := help
.PHONY: help setup run bench test lint html clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-8s %s\n", $$1, $$2}'

setup: $(STAMP) ## create .venv: torch first (TORCH_SPEC), then the kit with its dev extras

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

run: setup ## run the default sweep (parameters/default.yaml) on the hardware present; results in outputs/
	HF_HUB_OFFLINE=1 $(BIN)/benchkit bench --params $(PARAMS)

test: setup ## run the whole test suite
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest $(PYTEST_ARGS)

lint: setup ## ruff over the kit, tests and benchmarks
	$(BIN)/ruff check kit tests benchmarks

clean: ## remove generated outputs (keeps .venv)
	rm -rf outputs .pytest_cache .ruff_cache
