"""A training task's log (the lines `launch_pretrain` hands the Prefect task) holds what the run
did, not Lightning's device summary, tips or warnings this code cannot act on (issue 32)."""

from __future__ import annotations

import re

import pytest

from pipeline.pretrain.launch import launch_pretrain
from pipeline.pretrain.trainer import QUIET_LIGHTNING_INFO
from tests.pretrain.helpers import make_run_dir, tiny_config

# What the training task passes: its log shows progress as one line per logged step.
TASK = ("pretrain.progress_bar=false", "pretrain.mlflow=false", "pretrain.val_interval=2")


@pytest.mark.slow
def test_training_log_has_no_tips_device_summary_warnings_or_bar_redraws(
    tokenize_dir, tmp_path, monkeypatch
):
    monkeypatch.chdir(tmp_path)
    run_dir = make_run_dir(tmp_path / "run", tokenize_dir)
    lines: list[str] = []
    launch_pretrain(tiny_config(*TASK, "pretrain.max_steps=4"), run_dir, lines.append)
    # A longer run on the same directory resumes from the checkpoint directory it left.
    resumed = tiny_config(*TASK, "pretrain.max_steps=6")
    launch_pretrain(resumed, run_dir, lines.append)
    # Lightning's own lines about the run stay.
    assert sum("`Trainer.fit` stopped" in line for line in lines) == 2, lines
    assert any(line.startswith("Restored all states from the checkpoint") for line in lines)
    noise = [
        line
        for line in lines
        if line.startswith(QUIET_LIGHTNING_INFO)
        or re.match(r"\S+\.py:\d+: ", line)  # a `warnings.warn` line: `file.py:21: message`
        or "Warning" in line
        or "%|" in line  # a tqdm bar's redraw
        or "\r" in line
    ]
    assert not noise, noise
