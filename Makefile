# lmpipe: `make demo` runs the whole pipeline on the bundled sample; `make test` checks everything.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_HOME ?= $(CURDIR)/.prefect
# A loaded 2-core machine can take longer than the default 20 s to start the ephemeral API.
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 180

.PHONY: setup demo test lint format bench clean ui-prefect ui-mlflow

setup: $(VENV)/.installed

# torch is installed first and pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# The whole pipeline on the bundled sample (CPU), then a generation from the registered champion.
# Runs are kept in .prefect/ (Prefect) and mlflow.db (MLflow): `make ui-prefect`, `make ui-mlflow`.
demo: setup
	$(BIN)/lmpipe run --config configs/demo.yaml
	$(BIN)/lmpipe generate --config configs/demo.yaml --model models:/lmpipe-demo@champion \
		"What is the json module for?"
	@echo
	@echo "Prefect UI (flow runs, logs, reports): make ui-prefect, then http://127.0.0.1:4200"
	@echo "MLflow UI (runs, loss curves, registry): make ui-mlflow, then http://127.0.0.1:5000"

ui-prefect: setup
	$(BIN)/prefect server start

ui-mlflow: setup
	$(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db --port 5000

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
	$(PY) benchmarks/clean.py
	$(PY) -m benchmarks.dedup
	$(PY) -m benchmarks.scaleout

clean:
	rm -rf runs .prefect mlflow.db mlruns
