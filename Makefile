# Two commands do everything on a fresh machine (Python 3.10+ with venv, git):
#   make run    set up, then materialize the whole chain on the embedded defaults
#   make test   set up, then run the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
ANTLR_VERSION := 4.13.2
BIN := $(VENV)/bin
export DAGSTER_HOME := $(CURDIR)/.dagster_home
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup run test lint ui bench clean

# The venv is rebuilt when the pinned constraints or the package metadata change.
$(VENV)/.installed: pyproject.toml requirements/constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade "pip>=24"
	$(BIN)/pip install --quiet -c requirements/constraints.txt -e ".[dev]"
	# dvc -> hydra-core pins antlr4 4.9, but dagster's asset-selection grammar (`--select`) is generated with
	# antlr 4.13 and fails on 4.9. DVC uses hydra only for `dvc exp -S` overrides, which this project doesn't.
	$(BIN)/pip install --quiet --no-deps "antlr4-python3-runtime==$(ANTLR_VERSION)"
	touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

setup: $(VENV)/.installed $(DAGSTER_HOME)/dagster.yaml

# Overrides use the train CLI's syntax: make run CONFIG=sngan SET="train.steps=3000 eval.fid_max=40"
CONFIG ?= default
SET ?=
run: setup
	$(BIN)/python -m pipelines.run_config --config $(CONFIG) $(SET) > $(DAGSTER_HOME)/run_config.yaml
	# One machine, one step at a time: the steps run in the run worker (the UI and deploy/ keep a process
	# per step). GAN_EXECUTOR=multiprocess make run restores that here.
	GAN_EXECUTOR=$${GAN_EXECUTOR:-in_process} $(BIN)/dagster job execute -m pipelines.definitions -j retrain -c $(DAGSTER_HOME)/run_config.yaml
	$(BIN)/python -m pipelines.summary

test: setup
	bash scripts/ensure_chromium.sh
	$(BIN)/python -m pytest -q -ra --durations=15 $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports

ui: setup
	# dagster dev (location gan_workflow, from pyproject's [tool.dagster]) + the image server on 127.0.0.1:3001
	$(BIN)/python -m pipelines.ui --port 3000 --artifact-port 3001

bench: setup
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(DAGSTER_HOME) outputs
