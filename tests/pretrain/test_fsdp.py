"""FSDP2 on two CPU ranks (gloo): sharded checkpoints, consolidated weights, exact resume."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from pipeline.pretrain.consolidate import consolidate_checkpoint
from pipeline.pretrain.launch import launch_pretrain
from pipeline.pretrain.metrics import read_metrics
from pipeline.pretrain.trainer import recover_checkpoint
from tests.pretrain.helpers import make_run_dir, tiny_config

FSDP = [
    "pretrain.strategy=fsdp",
    "pretrain.devices=2",
    "pretrain.accelerator=cpu",
    "pretrain.val_interval=4",
    "pretrain.checkpoint_interval=4",
    "pretrain.log_interval=1",
    "pretrain.model.d_model=32",
    "pretrain.model.n_heads=2",
    "pretrain.model.block_size=32",
    # All steps in warmup: the lr of step s does not depend on max_steps (the cosine's end), so a
    # 6-step run extended to 9 follows the 9-step run's schedule exactly.
    "pretrain.warmup_steps=20",
]


def train(run_dir, *overrides):
    cfg = tiny_config(*FSDP, *overrides)
    lines: list[str] = []
    result = launch_pretrain(cfg, run_dir, lines.append)
    return result.manifest, "\n".join(lines)


@pytest.mark.slow
def test_fsdp_resume_matches_an_uninterrupted_run(tokenize_dir, tmp_path):
    straight = make_run_dir(tmp_path / "straight", tokenize_dir)
    m_straight, _ = train(straight, "pretrain.max_steps=9")
    resumed = make_run_dir(tmp_path / "resumed", tokenize_dir)
    m_first, output = train(resumed, "pretrain.max_steps=6")
    assert "distributed_backend=gloo" in output
    ckpt = resumed / "pretrain" / "checkpoints" / "last.ckpt"
    # One shard per rank plus Lightning's metadata: a sharded (DCP) checkpoint directory.
    names = sorted(p.name for p in ckpt.iterdir())
    assert names == [".metadata", "__0_0.distcp", "__1_0.distcp", "meta.pt"]
    assert not list(ckpt.parent.glob(".*"))  # no temp or old checkpoint left behind
    assert m_first["counts"]["steps"] == 6 and m_first["counts"]["world_size"] == 2
    m_second, _ = train(resumed, "pretrain.max_steps=9")
    assert m_second["resumed_from_step"] == 6

    train_a, _ = read_metrics(straight / "pretrain")
    train_b, _ = read_metrics(resumed / "pretrain")
    assert [r["step"] for r in train_b] == list(range(1, 10))
    for a, b in zip(train_a, train_b, strict=True):
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-5), f"step {a['step']}"
    weights_a = load_file(str(straight / "pretrain" / "model.safetensors"))
    weights_b = load_file(str(resumed / "pretrain" / "model.safetensors"))
    assert weights_a.keys() == weights_b.keys()
    assert weights_a["model.embed_tokens.weight"].shape == (2048, 32)  # whole, not a shard
    for name, tensor in weights_a.items():
        assert torch.allclose(weights_b[name], tensor, atol=1e-5), name

    # One rank instead of two: DCP reshards the checkpoint, the data continues at its sample.
    m_third, _ = train(resumed, "pretrain.max_steps=11", "pretrain.devices=1")
    assert m_third["resumed_from_step"] == 9 and m_third["counts"]["world_size"] == 1
    train_c, _ = read_metrics(resumed / "pretrain")
    assert [r["step"] for r in train_c] == list(range(1, 12))
    assert train_c[9]["loss"] < train_c[0]["loss"]  # continued from trained weights, not init

    # The last (sharded) checkpoint consolidates offline to the weights the run exported.
    consolidate_checkpoint(ckpt, tmp_path / "consolidated")
    exported = load_file(str(resumed / "pretrain" / "model.safetensors"))
    assert load_file(str(tmp_path / "consolidated" / "model.safetensors")).keys() == exported.keys()
    for name, tensor in load_file(str(tmp_path / "consolidated" / "model.safetensors")).items():
        assert torch.equal(tensor, exported[name]), name


def test_a_kill_between_the_renames_leaves_a_checkpoint_resume_takes(tmp_path):
    ckpt_dir = tmp_path / "checkpoints"
    old, partial = ckpt_dir / ".last.ckpt.old", ckpt_dir / ".last.ckpt.tmp"
    for d in (old, partial):
        d.mkdir(parents=True)
    (old / "meta.pt").write_bytes(b"complete")  # the previous checkpoint, moved aside
    (partial / "__0_0.distcp").write_bytes(b"half")  # the new one, never renamed
    (ckpt_dir / ".best-step=4.ckpt.tmp-123").write_bytes(b"half")  # DDP's temp file
    recover_checkpoint(ckpt_dir)
    assert sorted(p.name for p in ckpt_dir.iterdir()) == ["last.ckpt"]
    assert (ckpt_dir / "last.ckpt" / "meta.pt").read_bytes() == b"complete"
