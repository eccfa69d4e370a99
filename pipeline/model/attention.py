"""Causal self-attention with document masking for packed sequences, and a KV-cache hook.

Backends, chosen per batch:
- flash-attn's `flash_attn_varlen_func` (cu_seqlens) when the package is importable, the tensors
  are on CUDA and in fp16/bf16: documents of a packed batch are separate sequences to it;
- otherwise, for a batch with a document boundary, the kernel `DecoderLM.masked_attention` names
  (`pretrain.masked_attention`):
  - `sdpa`: `F.scaled_dot_product_attention` with a block-diagonal causal boolean mask (the CPU
    flash kernel accepts it; on CUDA PyTorch picks the memory-efficient kernel);
  - `flex`: PyTorch's `flex_attention` with a document `BlockMask` (torchtitan's way): blocks
    between documents are skipped, no (B, 1, T, T) mask is read. Compiled on CUDA (the fused
    kernel); on CPU it runs eagerly and forward only (torch has no CPU backward for it);
- a batch without boundaries: SDPA with `is_causal=True` (its flash kernel on CUDA and on CPU).
A token never attends across an EOD, on every backend.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from pipeline.model.config import ModelConfig
from pipeline.model.layers import apply_rotary

try:  # the CUDA-only flash-attn package; absent on CPU machines
    from flash_attn import flash_attn_varlen_func
except ImportError:  # pragma: no cover - depends on the machine
    flash_attn_varlen_func = None


def document_positions(idx: torch.Tensor, eod_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Packed tokens (B, T) -> (positions, doc_ids), each (B, T).

    A document ends with its EOD, so the token after an EOD starts a new document. `doc_ids`
    counts documents within a row; `positions` restart at 0 with every document so a document
    sees the same RoPE phases packed or alone.
    """
    B, T = idx.shape
    starts = torch.zeros_like(idx, dtype=torch.bool)
    starts[:, 1:] = idx[:, :-1] == eod_id  # (B, T) True where a new document begins
    doc_ids = starts.long().cumsum(dim=1)  # (B, T)
    t = torch.arange(T, device=idx.device).expand(B, T)  # (B, T)
    first = torch.where(starts, t, torch.zeros_like(t)).cummax(dim=1).values  # (B, T)
    return t - first, doc_ids


@dataclass
class AttentionLayout:
    """Who may attend to whom in one forward pass; built once and shared by every layer."""

    mask: torch.Tensor | None = None
    """(B, 1, T, S) bool, True = may attend; None means `causal` alone decides."""
    causal: bool = True
    """Plain causal attention (the `is_causal=True` fast path) when `mask` is None."""
    cu_seqlens: torch.Tensor | None = None
    """(docs + 1,) int32 start offsets of documents in the flattened batch (flash-attn varlen)."""
    max_seqlen: int = 0
    """Longest document in the batch (flash-attn varlen)."""
    block_mask: Any = None
    """flex_attention's `BlockMask` of the documents (the `flex` kernel)."""


MaskedKernel = Literal["sdpa", "flex"]
"""How a batch with document boundaries is attended when flash-attn's varlen kernel cannot run."""


def varlen_usable(x: torch.Tensor) -> bool:
    """True when flash-attn's varlen kernel can run on activations like `x` (CUDA, fp16/bf16)."""
    if flash_attn_varlen_func is None or x.device.type != "cuda":
        return False
    autocast = torch.is_autocast_enabled("cuda")
    dtype = torch.get_autocast_dtype("cuda") if autocast else x.dtype
    return dtype in (torch.float16, torch.bfloat16)


def build_layout(
    doc_ids: torch.Tensor | None,
    T: int,
    past: int,
    device: torch.device,
    varlen: bool,
    masked: MaskedKernel = "sdpa",
) -> AttentionLayout:
    """The layout of T new tokens after `past` cached ones; `doc_ids` (B, T) or None."""
    if past:
        if doc_ids is not None:
            raise ValueError("document masking and a KV cache cannot be combined")
        if T == 1:
            return AttentionLayout(causal=False)  # one new token sees every cached one
        # SDPA's is_causal aligns top-left, wrong for T queries after `past` keys: explicit mask.
        q_pos = past + torch.arange(T, device=device)  # (T,)
        mask = torch.arange(past + T, device=device)[None, :] <= q_pos[:, None]  # (T, S)
        return AttentionLayout(mask=mask[None, None], causal=False)
    if doc_ids is None:
        return AttentionLayout(causal=True)
    if varlen:
        return _varlen_layout(doc_ids)
    if masked == "flex":
        return AttentionLayout(causal=False, block_mask=document_block_mask(doc_ids))
    B = doc_ids.shape[0]
    same_doc = doc_ids[:, :, None] == doc_ids[:, None, :]  # (B, T, T)
    causal = torch.ones(T, T, dtype=torch.bool, device=device).tril()  # (T, T)
    return AttentionLayout(mask=(same_doc & causal).view(B, 1, T, T), causal=False)


def _varlen_layout(doc_ids: torch.Tensor) -> AttentionLayout:
    B, T = doc_ids.shape
    row_offset = torch.arange(B, device=doc_ids.device)[:, None] * T  # (B, 1)
    flat = (doc_ids + row_offset).flatten()  # (B*T,) unique id per document of the batch
    new_doc = torch.ones_like(flat, dtype=torch.bool)
    new_doc[1:] = flat[1:] != flat[:-1]
    starts = new_doc.nonzero().flatten()  # (docs,)
    end = torch.tensor([B * T], device=flat.device)
    cu_seqlens = torch.cat([starts, end]).to(torch.int32)  # (docs + 1,)
    max_seqlen = int((cu_seqlens[1:] - cu_seqlens[:-1]).max())  # one sync per forward
    return AttentionLayout(causal=False, cu_seqlens=cu_seqlens, max_seqlen=max_seqlen)


def document_block_mask(doc_ids: torch.Tensor):  # (B, T) -> flex_attention BlockMask
    """flex_attention's mask of packed documents: causal within a document, nothing across.

    Built once per forward and shared by every layer; its mask_mod reads `doc_ids`. A block
    (128 x 128 tokens) wholly between two documents is skipped by the kernel, one wholly inside
    a document's causal part runs unmasked.
    """
    from torch.nn.attention.flex_attention import create_block_mask

    B, T = doc_ids.shape

    def document_causal(b, h, q_idx, kv_idx):
        return (doc_ids[b, q_idx] == doc_ids[b, kv_idx]) & (kv_idx <= q_idx)

    return create_block_mask(document_causal, B, None, T, T, device=doc_ids.device)


_compiled_flex: Callable[..., torch.Tensor] | None = None


def flex_kernel(device_type: str) -> Callable[..., torch.Tensor]:
    """flex_attention, compiled on CUDA (eager flex materialises the score matrix there; like
    torchtitan, always compiled); eager elsewhere: on CPU, torch 2.13's eager flex runs the
    forward in a fraction of a second where compiling it took ~30 s on 2 busy cores. Inside a
    compiled block the surrounding torch.compile traces it either way."""
    global _compiled_flex
    from torch.nn.attention.flex_attention import flex_attention

    if device_type != "cuda":
        return flex_attention
    if _compiled_flex is None:
        _compiled_flex = torch.compile(flex_attention, dynamic=False)
    return _compiled_flex


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, layout: AttentionLayout
) -> torch.Tensor:  # q: (B, H, T, hd); k, v: (B, KV, S, hd) -> (B, H, T, hd)
    if layout.cu_seqlens is not None:
        return _attend_varlen(q, k, v, layout)
    if layout.block_mask is not None:
        return _attend_flex(q, k, v, layout)
    return F.scaled_dot_product_attention(
        q,
        k,
        v,
        attn_mask=layout.mask,
        is_causal=layout.causal and layout.mask is None,
        enable_gqa=k.shape[1] != q.shape[1],
    )


def _attend_varlen(q, k, v, layout: AttentionLayout) -> torch.Tensor:
    B, H, T, hd = q.shape

    def flat(x: torch.Tensor) -> torch.Tensor:  # (B, h, T, hd) -> (B*T, h, hd)
        return x.transpose(1, 2).reshape(B * T, x.shape[1], hd)

    cu, n = layout.cu_seqlens, layout.max_seqlen
    y = flash_attn_varlen_func(flat(q), flat(k), flat(v), cu, cu, n, n, causal=True)
    return y.view(B, T, H, hd).transpose(1, 2)  # (B, H, T, hd)


def _attend_flex(q, k, v, layout: AttentionLayout) -> torch.Tensor:
    if q.device.type == "cpu" and torch.is_grad_enabled() and q.requires_grad:
        raise NotImplementedError(
            "the `flex` masked-attention kernel has no backward on CPU (torch's flex_attention is "
            "forward-only there): train on CPU with `pretrain.masked_attention: sdpa`"
        )
    gqa = k.shape[1] != q.shape[1]
    kernel = flex_kernel(q.device.type)
    return kernel(q, k, v, block_mask=layout.block_mask, enable_gqa=gqa)  # (B, H, T, hd)


class KVCache:
    """Keys and values of earlier tokens for incremental decoding, preallocated.

    The hook a generator uses: `model(idx, kv_cache=cache)` appends the new tokens' keys and
    values layer by layer and advances `length`; positions continue from `length`.
    """

    def __init__(
        self,
        cfg: ModelConfig,
        batch_size: int,
        max_len: int,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ):
        shape = (cfg.n_layers, batch_size, cfg.kv_heads, max_len, cfg.head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)  # (L, B, KV, max_len, hd)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.max_len = max_len
        self.length = 0
        """Tokens already cached."""

    def update(
        self, layer: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:  # k, v: (B, KV, T, hd) -> (B, KV, length + T, hd)
        end = self.length + k.shape[2]
        if end > self.max_len:
            raise ValueError(f"KV cache holds {self.max_len} tokens, {end} requested")
        self.k[layer, :, :, self.length : end] = k
        self.v[layer, :, :, self.length : end] = v
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def advance(self, n: int) -> None:
        self.length += n


class Attention(nn.Module):
    """Multi-head (or grouped-query) causal self-attention with RoPE; HF `LlamaAttention` names."""

    def __init__(self, cfg: ModelConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.n_heads, self.n_kv_heads, self.head_dim = cfg.n_heads, cfg.kv_heads, cfg.head_dim
        self.q_proj = nn.Linear(cfg.d_model, cfg.n_heads * cfg.head_dim, bias=False)
        self.k_proj = nn.Linear(cfg.d_model, cfg.kv_heads * cfg.head_dim, bias=False)
        self.v_proj = nn.Linear(cfg.d_model, cfg.kv_heads * cfg.head_dim, bias=False)
        self.o_proj = nn.Linear(cfg.n_heads * cfg.head_dim, cfg.d_model, bias=False)

    def forward(
        self,
        x: torch.Tensor,  # (B, T, C)
        cos: torch.Tensor,  # (B, 1, T, hd)
        sin: torch.Tensor,  # (B, 1, T, hd)
        layout: AttentionLayout,
        kv_cache: KVCache | None = None,
    ) -> torch.Tensor:  # (B, T, C)
        B, T, _ = x.shape
        q = self.q_proj(x).view(B, T, self.n_heads, self.head_dim).transpose(1, 2)  # (B, H, T, hd)
        k = self.k_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B,KV,T,hd)
        v = self.v_proj(x).view(B, T, self.n_kv_heads, self.head_dim).transpose(1, 2)  # (B,KV,T,hd)
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        if kv_cache is not None:
            k, v = kv_cache.update(self.layer_idx, k, v)  # (B, KV, S, hd)
        y = attend(q, k, v, layout)  # (B, H, T, hd)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.n_heads * self.head_dim))
