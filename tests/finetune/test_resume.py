"""A fine-tuning run that dies part-way resumes from its last checkpoint and ends with the
weights of an uninterrupted run."""

from __future__ import annotations

import lightning as L
import pytest
import torch

import pipeline.pretrain.run as training_run  # TrainingJob.attach_trainer builds the trainer
from pipeline.finetune.run import run_finetune
from pipeline.model import load_model
from tests.finetune.runs import fresh_run, tiny_config

SHORT = [
    "finetune.max_steps=16",
    "finetune.warmup_steps=2",
    "finetune.checkpoint_interval=8",
    "finetune.val_interval=8",
    "finetune.lr=5e-3",
]


class Crash(L.Callback):
    """Fails the run after optimizer step `at` (as a killed process would stop it)."""

    def __init__(self, at: int):
        self.at = at

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == self.at:
            raise RuntimeError("simulated crash")


def finetune_crashing_at(step: int, cfg, run, monkeypatch) -> None:
    """Fine-tune `run` until the crash after optimizer step `step` (its checkpoints stay)."""
    build = training_run.build_trainer
    with monkeypatch.context() as patch:
        patch.setattr(
            training_run,
            "build_trainer",
            lambda c, out, callbacks, loggers: build(c, out, [*callbacks, Crash(step)], loggers),
        )
        with pytest.raises(RuntimeError, match="simulated crash"):
            run_finetune(cfg, run)


def test_an_interrupted_run_resumes_to_the_same_weights(pretrained_run, tmp_path, monkeypatch):
    cfg = tiny_config(*SHORT).finetune
    straight = fresh_run(pretrained_run, tmp_path / "straight")
    run_finetune(cfg, straight)

    crashed = fresh_run(pretrained_run, tmp_path / "crashed")
    finetune_crashing_at(11, cfg, crashed, monkeypatch)
    assert (crashed / "finetune" / "checkpoints" / "last.ckpt").is_file()
    assert not (crashed / "finetune" / "manifest.json").exists()

    m = run_finetune(cfg, crashed).manifest
    assert m["resumed_from_step"] == 8 and m["counts"]["steps"] == 16
    a = load_model(straight / "finetune").state_dict()
    b = load_model(crashed / "finetune").state_dict()
    for name in a:
        assert torch.allclose(a[name], b[name], atol=1e-6), name
