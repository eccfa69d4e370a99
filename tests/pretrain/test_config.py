"""One training configuration: pretrain and finetune are built from the same parts, each stage
with its own defaults, and every error names the stage's key."""

from __future__ import annotations

import pytest

from pipeline.config import ConfigError, PipelineConfig, load_config
from pipeline.finetune.config import FinetuneConfig
from pipeline.model import DecoderLayer, DecoderLM, ModelConfig, export_state_dict
from pipeline.pretrain.config import PretrainConfig, TrainingConfig, training_config_hash
from tests.conftest import REPO


def test_every_shared_key_means_the_same_in_both_stages():
    for name, shared in TrainingConfig.model_fields.items():
        for stage in (PretrainConfig, FinetuneConfig):
            field = stage.model_fields[name]
            assert field.annotation == shared.annotation, (stage.__name__, name)
            assert field.metadata == shared.metadata, (stage.__name__, name)  # the bounds
            assert field.description == shared.description, (stage.__name__, name)
    assert {"model", "document_masking", "num_workers"} <= set(PretrainConfig.model_fields)
    assert {"data", "method", "lora", "val_fraction"} <= set(FinetuneConfig.model_fields)


def test_each_stage_keeps_its_own_defaults():
    pre, ft = PretrainConfig(), FinetuneConfig()
    assert (pre.max_steps, pre.lr, pre.min_lr, pre.warmup_steps) == (300, 3e-3, 3e-4, 30)
    assert (ft.max_steps, ft.lr, ft.min_lr, ft.warmup_steps) == (200, 1e-3, 1e-4, 10)
    assert (pre.weight_decay, pre.betas) == (0.1, (0.9, 0.95))
    assert (ft.weight_decay, ft.betas) == (0.0, (0.9, 0.999))
    assert (pre.mlflow_experiment, ft.mlflow_experiment) == ("lmpipe-pretrain", "lmpipe-finetune")
    # The Prefect UI's form shows each section's own defaults (from the JSON schema).
    defs = PipelineConfig.model_json_schema()["$defs"]
    assert defs["PretrainConfig"]["properties"]["lr"]["default"] == 3e-3
    assert defs["FinetuneConfig"]["properties"]["lr"]["default"] == 1e-3
    assert defs["FinetuneConfig"]["properties"]["betas"]["default"] == [0.9, 0.999]


@pytest.mark.parametrize("stage", ["pretrain", "finetune"])
def test_errors_name_the_key_of_the_stage(stage):
    with pytest.raises(ConfigError, match=rf"`{stage}\.lr`: Input should be greater than 0"):
        load_config(None, [f"{stage}.lr=0"])
    with pytest.raises(ConfigError, match=rf"`{stage}\.min_lr` must not exceed `{stage}\.lr`"):
        load_config(None, [f"{stage}.lr=1e-4", f"{stage}.min_lr=1e-3"])
    with pytest.raises(ConfigError, match=rf"set `{stage}\.launcher` to torchrun or srun"):
        load_config(None, [f"{stage}.num_nodes=2"])
    with pytest.raises(ConfigError, match=rf"`{stage}\.lr_warmup`: unknown key"):
        load_config(None, [f"{stage}.lr_warmup=3"])


def test_the_config_hash_leaves_out_launch_and_tracking_keys_in_both_stages():
    for section in ("pretrain", "finetune"):
        base = getattr(load_config(None, []), section)
        same = base.model_copy(update={"mlflow_experiment": "x", "launcher_args": ["--a"]})
        other = base.model_copy(update={"betas": (0.8, 0.9)})
        assert training_config_hash(same) == training_config_hash(base), section
        assert training_config_hash(other) != training_config_hash(base), section


def test_every_config_file_loads():
    files = sorted((REPO / "configs").glob("*.yaml"))
    assert {f.name for f in files} >= {"demo.yaml", "124m.yaml", "1b.yaml"}
    for path in files:
        load_config(path)
    gpt2 = load_config(REPO / "configs" / "124m.yaml").pretrain.model
    assert (gpt2.n_layers, gpt2.n_heads, gpt2.d_model, gpt2.block_size) == (12, 12, 768, 1024)


def test_finetune_compile_applies_to_the_loaded_model_and_its_adapters(tmp_path):
    from pipeline.finetune.module import FinetuneModule

    model_cfg = ModelConfig(vocab_size=64, block_size=16, n_layers=2, n_heads=2, d_model=32)
    export_state_dict(DecoderLM(model_cfg).state_dict(), model_cfg, tmp_path)
    cfg = FinetuneConfig(compile=True)
    module = FinetuneModule(
        cfg.model_dump(mode="json"), model_cfg.model_dump(), str(tmp_path), cfg.lora.model_dump()
    )
    assert isinstance(module.cfg, FinetuneConfig) and module.cfg.compile
    blocks = [m for m in module.model.modules() if isinstance(m, DecoderLayer)]
    assert len(blocks) == 2 and all(b._compiled_call_impl is not None for b in blocks)
    assert any("lora_A" in n for n, _ in module.model.named_parameters())
