"""`lmpipe pretrain` through the Prefect training flow: a task that launches its own process."""

from __future__ import annotations

import json

import pytest

from flows.cli import main
from flows.train import training_flow
from pipeline.config import load_config
from tests.flows.prefect_api import artifacts
from tests.train.helpers import TINY, make_run_dir

# No capsys here: Prefect's console log handler would keep the captured stream after the test.


def test_lmpipe_pretrain_runs_the_training_flow(tokenize_dir, tmp_path, prefect_harness):
    run_dir = make_run_dir(tmp_path / "run", tokenize_dir)
    overrides = [
        *TINY,
        "pretrain.max_steps=4",
        "pretrain.val_interval=2",
        "pretrain.log_interval=2",
    ]
    args = ["pretrain", "--output", str(run_dir)]
    for override in overrides:
        args += ["--set", override]
    assert main(args) == 0
    assert json.loads((run_dir / "pretrain" / "manifest.json").read_text())["counts"]["steps"] == 4
    weights = run_dir / "pretrain" / "model.safetensors"
    written = weights.stat().st_mtime_ns
    reports = [a["data"] for a in artifacts(key="pretrain-report") if str(run_dir) in a["data"]]
    assert reports and "| steps | 4 |" in reports[0] and "val_loss" in reports[0]

    assert main(args) == 0  # the same inputs and config: no training process is started
    assert weights.stat().st_mtime_ns == written


def test_pretrain_before_tokenize_is_a_clear_error(tmp_path, prefect_harness):
    assert main(["pretrain", "--output", str(tmp_path)]) == 1
    with pytest.raises(FileNotFoundError, match="run the previous stage first"):
        training_flow(load_config(None, [f"run_dir={tmp_path}"]))
