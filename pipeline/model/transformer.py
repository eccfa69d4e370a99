"""The decoder-only transformer: a Llama-layout language model.

Module names and nesting mirror Hugging Face `LlamaForCausalLM` (`model.embed_tokens`,
`model.layers.N.self_attn.q_proj`, `model.layers.N.mlp.gate_proj`, `model.norm`, `lm_head`), so
the state dict loads into transformers unchanged and LoRA targets use the usual names.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from pipeline.model.attention import (
    Attention,
    KVCache,
    MaskedKernel,
    build_layout,
    varlen_usable,
)
from pipeline.model.config import ModelConfig
from pipeline.model.layers import RMSNorm, RotaryEmbedding, SwiGLU


class DecoderLayer(nn.Module):
    """Pre-norm block: x + attn(norm(x)), then + mlp(norm(x)). The FSDP wrap / checkpoint unit."""

    def __init__(self, cfg: ModelConfig, layer_idx: int):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.self_attn = Attention(cfg, layer_idx)
        self.post_attention_layernorm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.mlp = SwiGLU(cfg.d_model, cfg.ffn_dim)
        # Recompute this block's activations in backward (`pretrain.fsdp.activation_checkpointing`).
        self.activation_checkpointing = False

    def forward(self, x, cos, sin, layout, kv_cache=None) -> torch.Tensor:  # (B, T, C)
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, layout, kv_cache)
        return x + self.mlp(self.post_attention_layernorm(x))


class DecoderStack(nn.Module):
    """Embedding, the blocks and the final norm (HF `LlamaModel`)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.layers = nn.ModuleList(DecoderLayer(cfg, i) for i in range(cfg.n_layers))
        self.norm = RMSNorm(cfg.d_model, cfg.norm_eps)
        self.rotary_emb = RotaryEmbedding(cfg.head_dim, cfg.block_size, cfg.rope_theta)


class DecoderLM(nn.Module):
    """Tokens -> next-token logits. `forward(idx, positions, doc_ids, kv_cache)`."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        if cfg.vocab_size <= 0:
            raise ValueError("`model.vocab_size` must be resolved (ModelConfig.with_vocab)")
        self.config = cfg
        self.model = DecoderStack(cfg)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        # The kernel of batches with document boundaries when flash-attn varlen cannot run (see
        # attention.py); a run setting (`pretrain.masked_attention`), not a size: not in `cfg`.
        self.masked_attention: MaskedKernel = "sdpa"
        self.apply(self._init_weights)

    def _init_weights(self, module: nn.Module) -> None:
        std = self.config.init_std
        if isinstance(module, nn.Linear | nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)
        for name in ("o_proj", "down_proj"):
            # GPT-2's scaled init: each block adds two residual writes, keep their sum's variance.
            proj = getattr(module, name, None)
            if isinstance(proj, nn.Linear):
                nn.init.normal_(
                    proj.weight, mean=0.0, std=std / math.sqrt(2 * self.config.n_layers)
                )

    def forward(
        self,
        idx: torch.Tensor,  # (B, T) token ids
        positions: torch.Tensor | None = None,  # (B, T) RoPE positions; default past..past+T-1
        doc_ids: torch.Tensor | None = None,  # (B, T) document of each token; None = one document
        kv_cache: KVCache | None = None,
    ) -> torch.Tensor:  # (B, T, vocab_size) logits
        B, T = idx.shape
        past = 0
        if kv_cache is not None:
            past = kv_cache.length
            if past + T > kv_cache.max_len:
                raise ValueError(f"KV cache holds {kv_cache.max_len} tokens, {past + T} requested")
            self.model.rotary_emb.extend(kv_cache.max_len)  # generation may run past block_size
        if positions is None:
            positions = torch.arange(past, past + T, device=idx.device).expand(B, T)
        x = self.model.embed_tokens(idx)  # (B, T, C)
        cos, sin = self.model.rotary_emb(positions)  # (B, 1, T, hd) each
        varlen = varlen_usable(x)
        layout = build_layout(doc_ids, T, past, idx.device, varlen, self.masked_attention)
        for layer in self.model.layers:
            if layer.activation_checkpointing and self.training and torch.is_grad_enabled():
                # A function call, not a wrapper module: parameter names stay HF's.
                x = checkpoint(layer, x, cos, sin, layout, kv_cache, use_reentrant=False)
            else:
                x = layer(x, cos, sin, layout, kv_cache)  # (B, T, C)
        if kv_cache is not None:
            kv_cache.advance(T)
        return self.lm_head(self.model.norm(x))  # (B, T, V)

    def num_params(self, trainable_only: bool = False) -> int:
        """Distinct parameters (a tied embedding counts once)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def flops_per_token(self, seq_len: int) -> float:
        """Training FLOPs per token, forward + backward (PaLM, Chowdhery et al. 2022, app. B).

        6 * N + 12 * L * d_model * seq_len, N = weights used in matmuls (every Linear, lm_head
        included; the input embedding is a lookup). The attention term counts the full T x T
        score matrix, the usual convention, even though causal/document masking skips part of it.
        """
        matmul = sum(m.weight.numel() for m in self.modules() if isinstance(m, nn.Linear))
        cfg = self.config
        return 6.0 * matmul + 12.0 * cfg.n_layers * cfg.d_model * seq_len
