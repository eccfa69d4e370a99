# lmpipe: `make demo` runs the whole pipeline on the bundled sample; `make test` checks it (the tests
# not marked slow), `make test-all` runs every test (CI does).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
export PREFECT_SERVER_ANALYTICS_ENABLED ?= false
export PREFECT_HOME ?= $(CURDIR)/.prefect
# A loaded 2-core machine can take longer than the default 20 s to start the ephemeral API.
export PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS ?= 180

.PHONY: setup setup-gpu check-gpu-install lock demo test test-slow test-all lint format bench clean \
	ui-prefect ui-mlflow

setup: $(VENV)/.installed

SHELL := /bin/bash
# A pip config that lists local index directories (`extra-index-url = file:///opt/pypi/simple`,
# as on the machines this project is built on) makes pip warn once per package the directory
# lacks ("WARNING: Location 'file:///...' is ignored: it is neither a file nor a directory"):
# hundreds of lines that say nothing about the install. Only those lines are dropped; every
# other line and pip's exit status (pipefail) pass through.
PIP_LOCATIONS_QUIET := 2>&1 | { grep -v "is ignored: it is neither a file nor a directory" || true; }

# Installs exactly the versions in requirements.lock (with their sha256), then lmpipe itself without
# resolving anything: a fresh machine gets the environment CI tested. torch is the CPU build
# (2.13.0+cpu, from this machine's wheel directory): an unpinned torch would pull a multi-GB CUDA build.
$(VENV)/.installed: requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	set -o pipefail; $(PY) -m pip install -q pip==26.3 $(PIP_LOCATIONS_QUIET)
	set -o pipefail; $(PY) -m pip install -q --require-hashes --no-deps -r requirements.lock \
		$(PIP_LOCATIONS_QUIET)
	set -o pipefail; $(PY) -m pip install -q --no-deps --no-build-isolation -e . \
		$(PIP_LOCATIONS_QUIET)
	$(PY) -m pip check
	touch $@

# On a GPU machine: the CUDA build of the same torch (2.13.0 from PyPI, CUDA 13 wheels, several GB)
# in place of the locked CPU build; everything else stays the lock's. Not in the lock: this
# machine's pip config (/etc/xdg/pip) points at the CPU wheel, so pip runs without it here.
# `make check-gpu-install` resolves that install without downloading it and lists what it adds.
GPU_TORCH := PIP_CONFIG_FILE=/dev/null $(PY) -m pip install --isolated "torch==2.13.0" \
	--index-url https://pypi.org/simple
setup-gpu: setup
	$(GPU_TORCH) -q
	$(PY) -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, \
		'GPUs', torch.cuda.device_count())"

check-gpu-install: setup
	$(GPU_TORCH) -q --dry-run --ignore-installed --report $(VENV)/gpu-install.json
	$(PY) -c "import json; r = json.load(open('$(VENV)/gpu-install.json')); \
		print('\n'.join(i['metadata']['name'] + ' ' + i['metadata']['version'] for i in r['install']))"

# Re-resolve requirements.lock from pyproject.toml (after changing a dependency); commit both.
# Pins already in the lock are kept (`make lock UPGRADE=--upgrade` moves everything to the newest).
# uv does not read pip's config, so the directory holding the CPU torch wheel is named here.
LOCK_FLAGS := --extra dev --generate-hashes --python-version 3.11 \
	--python-platform x86_64-manylinux_2_28 --find-links /opt/wheels
# Not after `setup`: with a dependency just added, the installed environment fails `pip check`.
lock:
	test -x $(BIN)/uv || ($(PYTHON) -m venv $(VENV) && $(PY) -m pip install -q uv==0.13.9)
	$(BIN)/uv pip compile pyproject.toml $(LOCK_FLAGS) $(UPGRADE) -o requirements.lock

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

# One web worker and no background job runner (MLflow 3 starts 4 workers and ~10 job processes by
# default, about 3 GB, for GenAI features this project does not use).
ui-mlflow: setup
	MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false $(BIN)/mlflow ui --backend-store-uri sqlite:///mlflow.db \
		--port 5000 --workers 1

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# `make test`, the README's test command and the developer loop: ruff, then every test not marked
# `slow`, on TEST_WORKERS pytest-xdist workers (each with its own Prefect harness and servers; how
# tests are grouped onto workers: tests/conftest.py), then SERIAL_TESTS alone: they are
# timing-sensitive (per-page time limits of 1.5 s), and the other worker's load could push a good
# page over its limit. About 5 min on an idle 2-core machine (benchmarks/RESULTS.md).
# `make test-slow`: the tests marked `slow` (whole-pipeline runs, the PostgreSQL + `prefect server`
# + `mlflow server` stack, multi-process and two-node training, Ray, runs on a bucket), in one
# process: on 2 cores their training processes already use both. `make test-all`: both.
# CI (.ci/run) runs `make test` and then `make test-slow`: every test, on every change.
# `make test TEST_WORKERS=0`: one process.
TEST_WORKERS ?= 2
SERIAL_TESTS = tests/clean/test_resilience.py
XDIST = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) $(addprefix --ignore=,$(SERIAL_TESTS)))
SERIAL = $(if $(XDIST),$(PY) -m pytest -q -m "not slow" $(SERIAL_TESTS))

test: lint
	$(PY) -m pytest -q -m "not slow" $(XDIST)
	$(SERIAL)

test-slow: setup
	$(PY) -m pytest -q -m slow

test-all: test test-slow

bench: setup
	$(PY) -m benchmarks.ingest
	$(PY) -m benchmarks.ingest_s3
	$(PY) -m benchmarks.data_s3
	$(PY) benchmarks/tokenize_bench.py
	$(PY) benchmarks/train.py
	$(PY) benchmarks/clean.py
	$(PY) -m benchmarks.dedup
	$(PY) -m benchmarks.scaleout

clean:
	rm -rf runs .prefect mlflow.db mlruns
