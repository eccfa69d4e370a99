"""DDP with two CPU processes (gloo), launched the way the Prefect task launches training."""

from __future__ import annotations

import pytest
from safetensors.torch import load_file

from pipeline.pretrain.launch import launch_pretrain
from pipeline.pretrain.metrics import read_metrics
from tests.pretrain.helpers import make_run_dir, tiny_config


@pytest.mark.slow
def test_two_cpu_ranks_train_one_model(tokenize_dir, tmp_path):
    cfg = tiny_config(
        "pretrain.strategy=ddp",
        "pretrain.devices=2",
        "pretrain.accelerator=cpu",
        "pretrain.max_steps=8",
        "pretrain.val_interval=3",
        "pretrain.log_interval=1",
    )
    run_dir = make_run_dir(tmp_path / "run", tokenize_dir)
    lines: list[str] = []
    events: list[tuple[int, int]] = []
    result = launch_pretrain(cfg, run_dir, lines.append, lambda d, t, c: events.append((d, t)))
    output = "\n".join(lines)
    assert "Initializing distributed: GLOBAL_RANK: 1, MEMBER: 2/2" in output
    assert "distributed_backend=gloo" in output
    m = result.manifest
    assert m["counts"]["world_size"] == 2
    # Each optimizer step read one micro-batch per rank: twice the single-process tokens.
    assert m["counts"]["tokens"] == 8 * 2 * 4 * 64
    checksums = m["replica_checksums"]
    assert len(checksums) == 2 and checksums[0] == checksums[1]  # gathered from both ranks
    train, val = read_metrics(run_dir / "pretrain")
    assert [r["step"] for r in train] == list(range(1, 9))
    assert train[-1]["loss"] < train[0]["loss"]
    assert [r["step"] for r in val] == [3, 6, 8]  # the last one after fit, on both ranks
    assert events[-1] == (8, 8)
    weights = load_file(str(run_dir / "pretrain" / "model.safetensors"))
    assert weights["model.embed_tokens.weight"].shape == (2048, 64)
