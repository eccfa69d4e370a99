"""The model's layout: the same logits as transformers' LlamaForCausalLM, safetensors export."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open
from transformers import LlamaConfig, LlamaForCausalLM

from pipeline.config import ConfigError, load_config
from pipeline.model import DecoderLM, ModelConfig, export_state_dict, load_model


@pytest.mark.parametrize(
    "extra",
    [
        {"tie_embeddings": True},
        {"tie_embeddings": False, "n_kv_heads": 2, "rope_theta": 500_000.0},
    ],
)
def test_same_logits_as_hf_llama(extra):
    """Names, RoPE convention (rotate_half), GQA and tying all match the HF implementation."""
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=128, block_size=64, n_layers=2, n_heads=4, d_model=64, **extra)
    ours = DecoderLM(cfg).eval()
    hf = LlamaForCausalLM(LlamaConfig(**cfg.hf_llama_config())).eval()
    state = {k: v for k, v in ours.state_dict().items()}
    if cfg.tie_embeddings:
        state.pop("lm_head.weight")
    result = hf.load_state_dict(state, strict=False)
    assert not result.unexpected_keys
    assert set(result.missing_keys) <= {"lm_head.weight"}
    hf.tie_weights()
    idx = torch.randint(0, 128, (2, 40))
    with torch.no_grad():
        torch.testing.assert_close(ours(idx), hf(idx).logits, atol=1e-5, rtol=1e-5)


def test_flops_and_params_follow_the_config():
    cfg = ModelConfig(vocab_size=256, block_size=32, n_layers=2, n_heads=4, d_model=64)
    model = DecoderLM(cfg)
    per_layer = 4 * 64 * 64 + 3 * 64 * cfg.ffn_dim + 2 * 64  # attention, SwiGLU, two norms
    assert model.num_params() == 256 * 64 + 2 * per_layer + 64  # tied head counted once
    linear = 2 * (4 * 64 * 64 + 3 * 64 * cfg.ffn_dim) + 256 * 64
    assert model.flops_per_token(32) == 6 * linear + 12 * 2 * 64 * 32
    assert cfg.ffn_dim == 192  # 8/3 * 64 = 170.7, rounded up to a multiple of 64


def test_export_roundtrip(tmp_path):
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=128, block_size=32, n_layers=1, n_heads=2, d_model=32)
    model = DecoderLM(cfg).eval()
    path = export_state_dict(model.state_dict(), cfg, tmp_path)
    with safe_open(str(path), framework="pt") as f:
        keys = set(f.keys())
    assert "lm_head.weight" not in keys  # tied: stored once, as HF does
    assert "model.layers.0.self_attn.q_proj.weight" in keys
    assert json.loads((tmp_path / "model_config.json").read_text())["vocab_size"] == 128
    loaded = load_model(tmp_path).eval()
    idx = torch.randint(0, 128, (1, 16))
    with torch.no_grad():
        torch.testing.assert_close(loaded(idx), model(idx), atol=0, rtol=0)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("pretrain.model.d_model=100", "head dim"),
        ("pretrain.model.n_kv_heads=3", "multiple of `n_kv_heads`"),
        ("pretrain.model.d_model=130", "divisible by `n_heads`"),
    ],
)
def test_bad_shapes_are_config_errors_naming_the_key(override, message):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    assert "`pretrain.model`" in str(err.value) and message in str(err.value)


def test_vocab_is_taken_from_the_tokenizer_unless_set():
    assert ModelConfig().with_vocab(2048).vocab_size == 2048
    assert ModelConfig(vocab_size=4096).with_vocab(2048).vocab_size == 4096
    with pytest.raises(ValueError, match="smaller than the tokenizer"):
        ModelConfig(vocab_size=1024).with_vocab(2048)
