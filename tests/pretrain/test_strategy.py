"""Strategies and schedules from config: FSDP2 built, validated and applied per block."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch.strategies import DDPStrategy
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule

from pipeline.config import ConfigError, load_config
from pipeline.model import DecoderLM, ModelConfig
from pipeline.pretrain.config import PretrainConfig, resume_config_hash, training_config_hash
from pipeline.pretrain.module import lr_at, shard_model
from pipeline.pretrain.trainer import AtomicModelParallelStrategy, build_strategy, check_devices

REPO = Path(__file__).resolve().parents[2]


def test_fsdp_strategy_is_built_from_the_1b_config():
    cfg = load_config(REPO / "configs" / "1b.yaml").pretrain
    strategy = build_strategy(cfg)
    # FSDP2 through Lightning's ModelParallelStrategy, which also runs on CPU ranks (gloo).
    assert isinstance(strategy, AtomicModelParallelStrategy)
    assert strategy._data_parallel_size == 1  # the whole world is one shard group
    assert strategy._tensor_parallel_size == "world"  # all ranks of all nodes
    assert strategy._save_distributed_checkpoint  # state_dict_type: sharded
    assert cfg.fsdp.activation_checkpointing
    assert cfg.precision == "bf16-mixed" and cfg.num_nodes > 1


def test_hybrid_shard_replicates_across_nodes_and_shards_within_one():
    cfg = load_config(
        None,
        [
            "pretrain.strategy=fsdp",
            "pretrain.fsdp.sharding_strategy=HYBRID_SHARD",
            "pretrain.fsdp.state_dict_type=full",
            "pretrain.devices=8",
            "pretrain.num_nodes=2",
            "pretrain.launcher=torchrun",
        ],
    ).pretrain
    strategy = build_strategy(cfg)
    assert (strategy._data_parallel_size, strategy._tensor_parallel_size) == (2, 8)
    assert not strategy._save_distributed_checkpoint


def test_removed_fsdp1_sharding_strategy_is_refused_with_the_key():
    with pytest.raises(ConfigError, match="pretrain.fsdp.sharding_strategy"):
        load_config(None, ["pretrain.strategy=fsdp", "pretrain.fsdp.sharding_strategy=NO_SHARD"])


def test_fsdp_is_accepted_on_cpu():
    cfg = load_config(None, ["pretrain.strategy=fsdp", "pretrain.accelerator=cpu"]).pretrain
    check_devices(cfg)  # no GPU needed: gloo on CPU ranks
    with pytest.raises(ValueError, match="`pretrain.precision` 16-mixed .* fsdp"):
        check_devices(cfg.model_copy(update={"precision": "16-mixed"}))


@pytest.fixture
def one_rank_mesh():
    """A one-process gloo group and Lightning's (data_parallel, tensor_parallel) mesh."""
    store = torch.distributed.HashStore()
    torch.distributed.init_process_group("gloo", rank=0, world_size=1, store=store)
    try:
        yield init_device_mesh("cpu", (1, 1), mesh_dim_names=("data_parallel", "tensor_parallel"))
    finally:
        torch.distributed.destroy_process_group()


def test_shard_model_wraps_each_block_and_keeps_hf_names(one_rank_mesh):
    cfg = PretrainConfig(strategy="fsdp", fsdp={"activation_checkpointing": True})
    model_cfg = ModelConfig(block_size=16, n_layers=2, n_heads=2, d_model=32).with_vocab(64)
    torch.manual_seed(0)
    reference = DecoderLM(model_cfg)
    model = DecoderLM(model_cfg)
    model.load_state_dict(reference.state_dict())
    shard_model(model, cfg, one_rank_mesh)
    assert isinstance(model, FSDPModule)
    assert all(isinstance(layer, FSDPModule) for layer in model.model.layers)
    assert all(layer.activation_checkpointing for layer in model.model.layers)
    assert [n for n, _ in model.named_parameters()] == [n for n, _ in reference.named_parameters()]
    # Recomputing block activations in backward gives the same gradients.
    idx = torch.randint(0, 64, (2, 16))
    for m in (model, reference):
        m.train()
        m(idx).float().logsumexp(-1).mean().backward()
    for (name, p), (_, q) in zip(model.named_parameters(), reference.named_parameters()):
        assert torch.allclose(p.grad.full_tensor(), q.grad, atol=1e-6), name


def test_ddp_and_auto_strategies():
    assert isinstance(build_strategy(PretrainConfig(strategy="ddp")), DDPStrategy)
    assert build_strategy(PretrainConfig()) == "auto"


@pytest.mark.parametrize("name", ["demo.yaml", "124m.yaml", "1b.yaml"])
def test_shipped_configs_validate(name):
    cfg = load_config(REPO / "configs" / name).pretrain
    assert cfg.model.d_model % cfg.model.n_heads == 0


def test_124m_config_is_gpt2_small_sized():
    from pipeline.model import DecoderLM

    cfg = load_config(REPO / "configs" / "124m.yaml").pretrain
    with torch.device("meta"):  # shapes only: no memory for 124M weights
        model = DecoderLM(cfg.model.with_vocab(50_304))
    assert 120e6 < model.num_params() < 130e6


def test_warmup_then_cosine_to_min_lr():
    cfg = PretrainConfig(lr=1e-3, min_lr=1e-4, warmup_steps=10, max_steps=110)
    assert lr_at(0, cfg) == pytest.approx(1e-3 / 11)
    assert lr_at(9, cfg) == pytest.approx(1e-3 * 10 / 11)
    assert lr_at(10, cfg) == pytest.approx(1e-3)
    assert lr_at(60, cfg) == pytest.approx(5.5e-4)
    assert lr_at(110, cfg) == pytest.approx(1e-4)
    rates = [lr_at(s, cfg) for s in range(10, 111)]
    assert all(a >= b for a, b in zip(rates, rates[1:]))


def test_launch_settings_do_not_change_the_training_hash():
    base = PretrainConfig()
    assert training_config_hash(base) == training_config_hash(
        base.model_copy(update={"time_limit_minutes": 30.0, "progress_bar": False})
    )
    assert training_config_hash(base) != training_config_hash(base.model_copy(update={"lr": 1e-4}))


def test_more_steps_or_ranks_resume_the_same_checkpoints():
    base = PretrainConfig()
    longer = base.model_copy(update={"max_steps": 600, "devices": 2})
    assert training_config_hash(base) != training_config_hash(longer)  # not a finished run
    assert resume_config_hash(base) == resume_config_hash(longer)  # but its checkpoints resume
    assert resume_config_hash(base) != resume_config_hash(base.model_copy(update={"lr": 1e-4}))


@pytest.mark.parametrize("stage", ["pretrain", "finetune"])
def test_several_nodes_need_a_multi_node_launcher(stage):
    with pytest.raises(ConfigError, match=f"`{stage}.num_nodes` is 2: set `{stage}.launcher`"):
        load_config(None, [f"{stage}.num_nodes=2"])
    load_config(None, [f"{stage}.num_nodes=2", f"{stage}.launcher=srun"])
