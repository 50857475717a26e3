# Benchkit: `make run` measures and reports on this machine; `make test` runs the test suite.
PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.13.0
TORCH_SPEC ?= torch==$(TORCH_VERSION)
PARAMS ?= parameters/01_benchmark.yaml
OUT ?= outputs
# PROFILE=quick (default: real sizes, minutes) or full (the whole study, hours on a 2-core machine)
PROFILE ?= quick
# BROWSER=0 skips installing Chromium and onnxruntime-web (the wasm/webgpu/webnn platforms are then skipped, with why)
BROWSER ?= 1
PYTEST_ARGS ?=
# test processes (pytest-xdist): many tests wait on child processes, so two share two cores well; 0 runs them in one
TEST_WORKERS ?= 2
BIN := $(VENV)/bin
STAMP := $(VENV)/.benchkit-installed

.DEFAULT_GOAL := help
.PHONY: help setup browser run bench report test lint html clean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "} {printf "  %-8s %s\n", $$1, $$2}'

setup: $(STAMP) ## create .venv: torch first (TORCH_SPEC), then the kit with its dev extras (OpenVINO, ONNX)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

browser: setup ## install Debian's Chromium, onnxruntime-web and a WebNN-capable Chromium (best effort)
	@if [ "$(BROWSER)" = 1 ]; then bash scripts/install_browser.sh --webnn $(BIN)/python \
	  || echo "browser install failed: the wasm/webgpu/webnn platforms will be reported as skipped"; fi

run: setup browser ## execute every notebook on real sizes (PROFILE=quick or full): $(OUT)/index.html
	HF_HUB_OFFLINE=1 $(BIN)/benchkit report --profile $(PROFILE) --out $(OUT)

bench: setup ## only the sweep of notebook 01's full profile (PARAMS=parameters/01_benchmark.yaml) into $(OUT)/benchkit.duckdb
	HF_HUB_OFFLINE=1 $(BIN)/benchkit bench --params $(PARAMS)

report: run ## same as run

html: setup ## the notebooks on tiny parameters, a quick look: $(OUT)/tiny/index.html (own database)
	HF_HUB_OFFLINE=1 $(BIN)/benchkit report --tiny --out $(OUT)/tiny --db $(OUT)/tiny/benchkit.duckdb

test: setup browser ## run the whole test suite
	HF_HUB_OFFLINE=1 $(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal $(PYTEST_ARGS)

lint: setup ## ruff over the kit, tests and benchmarks
	$(BIN)/ruff check kit tests benchmarks

clean: ## remove generated outputs (keeps .venv)
	rm -rf $(OUT) .pytest_cache .ruff_cache
