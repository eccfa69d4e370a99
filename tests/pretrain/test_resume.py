"""Killing a training process and rerunning it continues exactly where the checkpoint was."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow import MlflowClient
from safetensors.torch import load_file

from pipeline.core.stage import PROGRESS_DIR
from pipeline.pretrain.config import resume_config_hash
from pipeline.pretrain.metrics import read_metrics
from pipeline.pretrain.run import run_pretrain
from tests.conftest import REPO
from tests.pretrain.helpers import make_run_dir, tiny_config, write_config

# 48 steps, `last.ckpt` every 8: long enough to kill the run between two checkpoints.
RESUME = [
    "pretrain.max_steps=48",
    "pretrain.checkpoint_interval=8",
    "pretrain.val_interval=20",  # 20, 40, then the final validation at 48
    "pretrain.log_interval=1",
    "pretrain.grad_accum=2",
    "pretrain.model.d_model=96",
    "pretrain.model.n_heads=3",
]


def wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def logged_steps(stage_dir: Path) -> int:
    train, _ = read_metrics(stage_dir)
    return train[-1]["step"] if train else 0


def kill_mid_run(run_dir: Path, config: Path) -> None:
    """Start `python -m pipeline.pretrain`, SIGKILL its group a few steps after a checkpoint."""
    stage = run_dir / "pretrain"
    log = run_dir / "train.log"
    cmd = [sys.executable, "-m", "pipeline.pretrain", "--run-dir", str(run_dir)]
    cmd += ["--config", str(config)]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=out, start_new_session=True)
    try:
        last = stage / "checkpoints" / "last.ckpt"
        wait_for(lambda: last.is_file() or proc.poll() is not None, 240, "the first checkpoint")
        wait_for(lambda: logged_steps(stage) >= 11 or proc.poll() is not None, 60, "step 11")
        assert proc.poll() is None, log.read_text()[-3000:]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (stage / "manifest.json").exists()
    assert 11 <= logged_steps(stage) < 48


@pytest.mark.slow
def test_killed_run_resumes_with_the_same_losses(tokenize_dir, tmp_path, with_mlflow):
    cfg = tiny_config(*RESUME, "pretrain.mlflow=true")
    straight = run_pretrain(cfg.pretrain, tokenize_dir, tmp_path / "straight" / "pretrain").manifest

    run_dir = make_run_dir(tmp_path / "killed", tokenize_dir)
    kill_mid_run(run_dir, write_config(cfg, tmp_path / "config.json"))
    # What a full disk or a kill mid-save leaves (issue 16 row 9): gone after the rerun.
    leftovers = [run_dir / "pretrain" / "checkpoints" / ".last.ckpt.tmp-99999"]
    leftovers.append(run_dir / "pretrain" / ".model.safetensors.tmp-99999")
    for path in leftovers:
        path.write_bytes(b"partial")
    resumed = run_pretrain(cfg.pretrain, tokenize_dir, run_dir / "pretrain").manifest
    assert not any(path.exists() for path in leftovers)
    # Each step once in the file and in MLflow, though the killed run logged past its checkpoint.
    lines = (run_dir / "pretrain" / "metrics.jsonl").read_text().splitlines()
    steps = [json.loads(ln)["step"] for ln in lines if "loss" in json.loads(ln)]
    assert steps == list(range(1, 49))
    history = MlflowClient(with_mlflow).get_metric_history(
        resumed["mlflow"]["run_id"], "train/loss"
    )
    assert sorted(m.step for m in history) == list(range(1, 49))

    assert resumed["resumed_from_step"] in (8, 16, 24, 32, 40)  # from last.ckpt, not from 0
    train_a, val_a = read_metrics(tmp_path / "straight" / "pretrain")
    train_b, val_b = read_metrics(run_dir / "pretrain")
    assert [r["step"] for r in train_b] == list(range(1, 49))
    for a, b in zip(train_a, train_b, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5), f"step {a['step']}"
        assert b["lr"] == pytest.approx(a["lr"], rel=1e-9)
    assert [r["step"] for r in val_a] == [r["step"] for r in val_b] == [20, 40, 48]
    assert [r["val_loss"] for r in val_b] == pytest.approx([r["val_loss"] for r in val_a], 1e-5)
    weights_a = load_file(str(tmp_path / "straight" / "pretrain" / "model.safetensors"))
    weights_b = load_file(str(run_dir / "pretrain" / "model.safetensors"))
    for name, tensor in weights_a.items():
        assert (weights_b[name] - tensor).abs().max() < 1e-5, name
    assert resumed["counts"] == straight["counts"]
    # The stage directory was prepared for resuming under the resume key (no max_steps in it).
    stamp = json.loads((run_dir / "pretrain" / PROGRESS_DIR / "_run.json").read_text())
    assert stamp["config_hash"] == resume_config_hash(cfg.pretrain)
