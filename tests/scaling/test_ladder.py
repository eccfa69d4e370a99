"""Planning the ladder: sizes from the real model, token budgets, per-point configs."""

from __future__ import annotations

import pytest

from pipeline.config import ConfigError, load_config
from pipeline.model import DecoderLM
from pipeline.pretrain.config import training_config_hash
from pipeline.scaling.ladder import (
    non_embedding_params,
    plan_ladder,
    point_config,
    point_dir,
    tokens_per_step,
)
from tests.conftest import REPO


def test_non_embedding_params_exclude_embedding_and_head_tied_or_not():
    cfg = load_config(REPO / "configs" / "demo.yaml").pretrain.model.with_vocab(4096)
    for tied in (True, False):
        model_cfg = cfg.model_copy(update={"tie_embeddings": tied})
        total = DecoderLM(model_cfg).num_params()
        embeddings = 4096 * cfg.d_model * (1 if tied else 2)
        assert non_embedding_params(model_cfg) == total - embeddings


def test_the_demo_ladder_spans_ten_x_and_budgets_follow_tokens_per_param():
    config = load_config(REPO / "configs" / "demo.yaml")
    plan = plan_ladder(config)
    sizes = [p.non_embedding_params for p in plan]
    assert len(plan) == 5 and sizes == sorted(sizes) and sizes[-1] >= 10 * sizes[0]
    per_step = tokens_per_step(config)
    for p in plan:
        assert p.tokens == p.steps * per_step
        assert p.steps == config.scaling.min_steps or p.tokens >= 2.0 * p.non_embedding_params


def test_two_ratios_give_two_points_per_size():
    config = load_config(REPO / "configs" / "demo.yaml", ["scaling.tokens_per_param=[1, 4]"])
    plan = plan_ladder(config)
    assert len(plan) == 10
    assert [p.tokens_per_param for p in plan[:2]] == [1.0, 4.0]


def test_point_config_trains_the_size_and_keeps_the_recipe(tmp_path):
    config = load_config(REPO / "configs" / "demo.yaml", [f"run_dir={tmp_path}"])
    point = plan_ladder(config)[-1]
    cfg = point_config(config, point, parent_run_id="abc")
    p = cfg.pretrain
    assert (p.model.d_model, p.model.n_layers, p.model.n_heads) == (96, 2, 4)
    assert p.max_steps == point.steps and 0 < p.warmup_steps < p.max_steps
    assert p.lr == config.pretrain.lr and p.model.block_size == config.pretrain.model.block_size
    assert p.mlflow_parent_run_id == "abc" and p.mlflow_experiment == "lmpipe-scaling"
    # The parent run id is bookkeeping: it must not change what a finished point's manifest says.
    assert training_config_hash(p) == training_config_hash(point_config(config, point).pretrain)
    assert point_dir(tmp_path, point) == tmp_path / "scaling" / point.name / "pretrain"


def test_bad_ladders_fail_with_the_key_named():
    with pytest.raises(ConfigError, match="scaling.sizes"):
        load_config(None, ["scaling.sizes=[{d_model: 30, n_layers: 1, n_heads: 4}]"])
    with pytest.raises(ConfigError, match="tokens_per_param"):
        load_config(None, ["scaling.tokens_per_param=[0]"])
