# lmpipe: `make demo` runs the whole pipeline on the bundled sample; `make test` checks everything.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_HOME ?= $(CURDIR)/.prefect

.PHONY: setup demo test lint format bench clean

setup: $(VENV)/.installed

# torch is installed first and pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

demo: setup
	$(BIN)/lmpipe data --config configs/demo.yaml
	$(BIN)/lmpipe pretrain --config configs/demo.yaml
	$(BIN)/lmpipe report runs/demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(PY) -m pytest -q

bench: setup
	$(PY) benchmarks/ingest.py
	$(PY) benchmarks/tokenize_bench.py
	$(PY) benchmarks/train.py

clean:
	rm -rf runs .prefect mlflow.db mlruns
