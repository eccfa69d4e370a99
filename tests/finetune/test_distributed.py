"""Fine-tuning on two CPU ranks (gloo) through the launcher: full with DDP and FSDP2, LoRA with
FSDP2 (frozen base weights and trainable adapters sharded in the same units)."""

from __future__ import annotations

import pytest
import torch

from pipeline.core.stage import read_manifest
from pipeline.finetune.launch import launch_finetune
from pipeline.model import load_model
from pipeline.pretrain.metrics import read_metrics
from tests.finetune.runs import fresh_run, tiny_config
from tests.pretrain.test_multinode import launch_two_nodes, rendezvous_args

TWO_RANKS = [
    "finetune.devices=2",
    "finetune.accelerator=cpu",
    "finetune.max_steps=6",
    "finetune.warmup_steps=2",
    "finetune.val_interval=6",
    "finetune.checkpoint_interval=6",
    "finetune.log_interval=1",
    "finetune.micro_batch_size=4",
]


def finetune(run, *overrides) -> tuple[dict, list[float]]:
    cfg = tiny_config(*TWO_RANKS, *overrides)
    lines: list[str] = []
    manifest = launch_finetune(cfg, run, lines.append).manifest
    assert manifest["counts"]["world_size"] == 2, "\n".join(lines[-20:])
    train, _ = read_metrics(run / "finetune")
    return manifest, [r["loss"] for r in train]


@pytest.mark.slow
def test_full_finetuning_with_fsdp_follows_ddp(pretrained_run, tmp_path):
    ddp_run = fresh_run(pretrained_run, tmp_path / "ddp")
    fsdp_run = fresh_run(pretrained_run, tmp_path / "fsdp")
    _, ddp_losses = finetune(ddp_run, "finetune.strategy=ddp", "finetune.method=full")
    _, fsdp_losses = finetune(fsdp_run, "finetune.strategy=fsdp", "finetune.method=full")
    assert len(ddp_losses) == 6
    # The same data on the same ranks: sharding changes only the reduction order.
    assert fsdp_losses == pytest.approx(ddp_losses, rel=1e-4)
    a, b = load_model(ddp_run / "finetune"), load_model(fsdp_run / "finetune")
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.allclose(p, q, atol=1e-4), name


@pytest.mark.slow
def test_lora_under_fsdp_trains_adapters_and_exports_a_merged_model(pretrained_run, tmp_path):
    run = fresh_run(pretrained_run, tmp_path / "run")
    lora = ["finetune.strategy=fsdp", "finetune.method=lora", "finetune.lora.r=4"]
    manifest, losses = finetune(run, *lora, "finetune.lr=5e-3")
    counts = manifest["counts"]
    assert counts["trainable_parameters"] < counts["parameters"] / 5
    base, merged = load_model(run / "pretrain"), load_model(run / "finetune")
    changed = {
        name
        for name, tensor in merged.state_dict().items()
        if not torch.equal(tensor, base.state_dict()[name])
    }
    # Adapters on the attention and MLP projections only; embedding and norms stay frozen.
    assert changed and all(name.split(".")[-2].endswith("_proj") for name in changed)
    assert "model.embed_tokens.weight" not in changed


@pytest.mark.slow
def test_lora_fsdp_on_two_nodes_through_torchrun(pretrained_run, tmp_path):
    # Each rank reads the sample shards rank 0 writes: under torchrun both start at once.
    run = fresh_run(pretrained_run, tmp_path / "run")
    cfg = tiny_config(
        *TWO_RANKS,
        "finetune.devices=1",
        "finetune.num_nodes=2",
        "finetune.strategy=fsdp",
        "finetune.method=lora",
        "finetune.launcher=torchrun",
        f"finetune.launcher_args={rendezvous_args('lmpipe-finetune')}",
    )
    outputs = launch_two_nodes(cfg, run, launch_finetune, "finetune")
    assert sum("MEMBER: 2/2" in "\n".join(out) for out in outputs) == 1
    assert read_manifest(run / "finetune")["counts"]["world_size"] == 2
