"""Configuration of the decoder-only transformer (Llama layout: RMSNorm, SwiGLU, RoPE, GQA)."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from pipeline.core.base_config import StrictModel


class ModelConfig(StrictModel):
    """Sizes of the decoder-only transformer; the field names follow nanoGPT / litgpt."""

    vocab_size: int = Field(0, ge=0)
    """Embedding rows; 0 = the tokenizer's `padded_vocab_size` from the tokenize manifest."""
    block_size: int = Field(256, ge=8)
    """Context length: tokens per training sequence and the longest position RoPE is built for."""
    n_layers: int = Field(4, ge=1)
    """Transformer blocks."""
    n_heads: int = Field(4, ge=1)
    """Query heads per attention layer."""
    n_kv_heads: int = Field(0, ge=0)
    """Key/value heads (grouped-query attention); 0 = n_heads (plain multi-head attention)."""
    d_model: int = Field(128, ge=8)
    """Width of the residual stream (hidden size)."""
    ffn_hidden: int = Field(0, ge=0)
    """SwiGLU inner width; 0 = 8/3 * d_model rounded up to a multiple of 64 (Llama's rule)."""
    rope_theta: float = Field(10_000.0, gt=0)
    """RoPE base period."""
    norm_eps: float = Field(1e-5, gt=0)
    """RMSNorm epsilon."""
    tie_embeddings: bool = True
    """Share the input embedding matrix with the output projection (lm_head)."""
    init_std: float = Field(0.02, gt=0)
    """Std of the normal init; residual output projections get std / sqrt(2 * n_layers)."""

    @model_validator(mode="after")
    def _check_shapes(self) -> ModelConfig:
        if self.d_model % self.n_heads:
            raise ValueError("`d_model` must be divisible by `n_heads`")
        if (self.d_model // self.n_heads) % 2:
            raise ValueError("`d_model / n_heads` (the head dim) must be even for RoPE")
        if self.n_heads % self.kv_heads:
            raise ValueError("`n_heads` must be a multiple of `n_kv_heads`")
        return self

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def kv_heads(self) -> int:
        return self.n_kv_heads or self.n_heads

    @property
    def ffn_dim(self) -> int:
        if self.ffn_hidden:
            return self.ffn_hidden
        return -(-int(8 * self.d_model / 3) // 64) * 64

    def with_vocab(self, padded_vocab_size: int) -> ModelConfig:
        """This config with `vocab_size` resolved from the tokenizer when it was left at 0."""
        if self.vocab_size and self.vocab_size < padded_vocab_size:
            raise ValueError(
                f"`model.vocab_size`={self.vocab_size} is smaller than the tokenizer's "
                f"padded vocabulary ({padded_vocab_size})"
            )
        return self.model_copy(update={"vocab_size": self.vocab_size or padded_vocab_size})

    def to_dict(self) -> dict[str, Any]:
        """The HF-style config dict; peft reads `model.config.to_dict()` (e.g. to see tying)."""
        return {"model_type": "llama", **self.hf_llama_config()}

    def hf_llama_config(self) -> dict[str, Any]:
        """Keyword arguments of `transformers.LlamaConfig` describing the same network."""
        return {
            "vocab_size": self.vocab_size,
            "hidden_size": self.d_model,
            "intermediate_size": self.ffn_dim,
            "num_hidden_layers": self.n_layers,
            "num_attention_heads": self.n_heads,
            "num_key_value_heads": self.kv_heads,
            "max_position_embeddings": self.block_size,
            "rms_norm_eps": self.norm_eps,
            "rope_theta": self.rope_theta,
            "tie_word_embeddings": self.tie_embeddings,
            "attention_bias": False,
            "mlp_bias": False,
            "hidden_act": "silu",
        }
