"""Strategies and schedules from config: FSDP is built and validated (it cannot run on CPUs)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from lightning.pytorch.strategies import DDPStrategy, FSDPStrategy

from pipeline.config import ConfigError, load_config
from pipeline.model import DecoderLayer
from pipeline.train.config import PretrainConfig, training_config_hash
from pipeline.train.module import lr_at
from pipeline.train.trainer import build_strategy, check_devices

REPO = Path(__file__).resolve().parents[2]


def wrapped_classes(policy) -> set[type]:
    return set(policy._module_classes)


def test_fsdp_strategy_is_built_from_the_1b_config():
    cfg = load_config(REPO / "configs" / "1b.yaml").pretrain
    strategy = build_strategy(cfg)
    assert isinstance(strategy, FSDPStrategy)
    # Every transformer block is one FSDP unit and one activation-checkpointing unit.
    assert wrapped_classes(strategy.kwargs["auto_wrap_policy"]) == {DecoderLayer}
    assert cfg.fsdp.activation_checkpointing
    ac_policy = strategy._activation_checkpointing_kwargs["auto_wrap_policy"]
    assert wrapped_classes(ac_policy) == {DecoderLayer}
    assert strategy.sharding_strategy.name == cfg.fsdp.sharding_strategy
    assert strategy._state_dict_type == "sharded"
    assert cfg.precision == "bf16-mixed" and cfg.num_nodes > 1


def test_fsdp_options_map_onto_the_strategy():
    cfg = load_config(
        None,
        [
            "pretrain.strategy=fsdp",
            "pretrain.fsdp.sharding_strategy=HYBRID_SHARD",
            "pretrain.fsdp.cpu_offload=true",
            "pretrain.devices=8",
            "pretrain.num_nodes=2",
        ],
    ).pretrain
    strategy = build_strategy(cfg)
    assert strategy.cpu_offload.offload_params
    assert strategy.kwargs["device_mesh"] == (2, 8)  # replicate across nodes, shard within
    assert "activation_checkpointing_policy" not in strategy._activation_checkpointing_kwargs
    assert not strategy._activation_checkpointing_kwargs


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")
def test_fsdp_without_gpus_fails_before_training_with_a_clear_error():
    with pytest.raises(ValueError, match="fsdp needs CUDA GPUs"):
        check_devices(PretrainConfig(strategy="fsdp"))
    with pytest.raises(ConfigError, match="`pretrain`: .*fsdp needs GPUs"):
        load_config(None, ["pretrain.strategy=fsdp", "pretrain.accelerator=cpu"])


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
