"""`lmpipe pretrain` through the Prefect training flow: a task that launches its own process."""

from __future__ import annotations

import json
import shutil

import pytest

from flows.cli import main
from flows.train import training_flow
from pipeline.config import load_config
from tests.flows.prefect_api import artifacts
from tests.helpers import lmpipe_fails
from tests.pretrain.helpers import TINY, make_run_dir

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


def test_lmpipe_pretrain_on_a_truncated_token_shard_names_it_in_one_line(
    tokenize_dir, tmp_path, prefect_harness
):
    """Issue 33 row 14: `ArrowInvalid: Not an Arrow file` with no path; now the file and the
    stage to rerun, in one line, before any training process starts."""

    run = tmp_path / "run"
    shutil.copytree(tokenize_dir, run / "tokenize")  # a copy: the session's shards stay whole
    shard = run / "tokenize" / "train" / "shard-00000.arrow"
    with open(shard, "r+b") as fh:
        fh.truncate(shard.stat().st_size // 2)
    args = ["pretrain", "--output", str(run)]
    for override in [*TINY, "pretrain.max_steps=2"]:
        args += ["--set", override]
    assert lmpipe_fails(args) == [
        f"lmpipe: error: {shard} is unreadable (ArrowInvalid: Not an Arrow file): rerun the"
        f" tokenize stage, which wrote it: delete {run / 'tokenize'} and run `lmpipe tokenize"
        f" --output {run}` again (with the run's --config)"
    ]
    assert not (run / "pretrain" / "manifest.json").exists()
