# Two commands on a fresh machine: `make demo` and `make test`. Both create .venv if it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch first, pinned to the CPU wheel available here: a bare `torch` requirement would pull
# several GB of CUDA packages. pyproject.toml keeps a range, which this satisfies. Every extra that
# installs on a CPU machine comes along, so no test is skipped (Ray executor, IBM snapshots, box2d).
TORCH ?= torch==2.13.0
# Test processes (pytest-xdist): one per core. Every test runs one torch thread, so two processes on
# CI's 2 cores take the suite from ~11.5 to ~7 minutes; WORKERS=0 runs it in this process (for pdb).
WORKERS ?= auto

.PHONY: demo test test-expensive lint format clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e '.[test,ray,hardware,box2d]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/qrl compare --env CartPole-v1 --agents ppo-vqc ppo-mlp --steps 20000 --seed 0

test: $(BIN)/.installed lint
	$(BIN)/python -m pytest -q -n $(WORKERS)

test-expensive: $(BIN)/.installed
	$(BIN)/python -m pytest -q -m expensive -n $(WORKERS)

lint: $(BIN)/.installed
	$(BIN)/ruff check qrl tests

format: $(BIN)/.installed
	$(BIN)/ruff format qrl tests
	$(BIN)/ruff check --fix qrl tests

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .ruff_cache
