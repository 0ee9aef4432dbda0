# encdec-pl: `make help` lists the targets.
# Everything runs inside .venv (made by `make install`); VENV=... points elsewhere.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
ARGS ?=

.DEFAULT_GOAL := help
.PHONY: help install notebooks train sweep report search test test-fast lint format clean bench bench-quick bench-packing bench-quality evaluate results-table equilibrium-study

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

install: ## Create .venv and install encdec-pl (editable) with its test tools
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e '.[dev]'

train: ## Train EDE on MNIST; overrides go in ARGS, e.g. make train ARGS="loss.fake_weight=2.0"
	$(BIN)/python -m encdec_pl.train $(ARGS)

# The daily sweep: every fake_weight x latent_dim pair, one job per GPU here (or two at a time on CPU).
SWEEP ?= loss.fake_weight=0,0.5,1,2,4 model.latent_dim=8,16,32,64
ifndef SWEEP_DIR
SWEEP_DIR := outputs/train/multirun/$(shell date +%Y-%m-%d_%H-%M-%S)
endif
LATEST_SWEEP = $(shell ls -dt outputs/*/multirun/*/ 2>/dev/null | head -1)

sweep: ## Sweep SWEEP (default: fake_weight 0-4 x latent_dim 8-64) on this machine's GPUs, then summarise it
	$(BIN)/python -m encdec_pl.train -m $(SWEEP) hydra.sweep.dir=$(SWEEP_DIR) $(ARGS); status=$$?; \
	$(BIN)/python -m encdec_pl.report $(SWEEP_DIR); exit $$status

report: ## Summarise a sweep folder (default: the newest): make report SWEEP_DIR=outputs/train/multirun/<date>_<time>
	$(BIN)/python -m encdec_pl.report $(if $(filter command line environment,$(origin SWEEP_DIR)),$(SWEEP_DIR),$(LATEST_SWEEP)) $(ARGS)

search: ## Optuna search over fake_weight, latent_dim and lr (hparams_search=ede_optuna); overrides in ARGS
	$(BIN)/python -m encdec_pl.train hparams_search=ede_optuna $(ARGS)

bench: ## Time the published loop, a conventional Lightning loop and the fast path (docs/speed.md); run it alone
	$(BIN)/python -m encdec_pl.bench $(ARGS)

bench-quick: ## The benchmark's short CI mode: every part runs, the figures mean nothing
	$(BIN)/python -m encdec_pl.bench --config-name bench_quick $(ARGS)

bench-packing: ## Aggregate img/s of 1, 2, 4, 8 fast-path jobs sharing one device
	$(BIN)/python -m encdec_pl.bench.packing $(ARGS)

bench-quality: ## Fast path vs fp32 path after a fixed number of steps, over seeds
	$(BIN)/python -m encdec_pl.bench.quality $(ARGS)

evaluate: ## Score a checkpoint, e.g. make evaluate ARGS="ckpt_path=outputs/train/runs/<run>/checkpoints/last.ckpt"
	$(BIN)/python -m encdec_pl.evaluate $(ARGS)

results-table: ## Train and score the results table of docs/results.md (EDE fw 0/1/2/4, AE, VAE on 2 datasets; hours on CPU)
	$(BIN)/python scripts/results_table.py $(ARGS)

equilibrium-study: ## The equilibrium study of docs/results.md: long EDE runs with quality metrics, figures in docs/images
	$(BIN)/python scripts/equilibrium_study.py $(ARGS)

test: ## Run every test, slow ones included (as CI does); needs MNIST, see README
	$(BIN)/pytest -n 2 --dist loadgroup --durations 15

test-fast: ## Run the quick unit tests only
	$(BIN)/pytest -n 2 -m "not slow"

notebooks: ## Install JupyterLab (the `notebooks` extra) into .venv and open notebooks/
	$(BIN)/pip install -e '.[notebooks]'
	$(BIN)/jupyter lab notebooks/

lint: ## Check style and common bugs (ruff), notebooks included, then the package's layers (lint-imports)
	$(BIN)/ruff check src tests scripts notebooks
	$(BIN)/ruff format --check src tests scripts notebooks
	$(BIN)/lint-imports

format: ## Reformat and fix what ruff can
	$(BIN)/ruff format src tests notebooks
	$(BIN)/ruff check --fix src tests notebooks

clean: ## Remove caches and build files (keeps outputs/ and data/)
	rm -rf build dist .pytest_cache .ruff_cache .hypothesis src/*.egg-info
	find . -name __pycache__ -prune -exec rm -rf {} +
