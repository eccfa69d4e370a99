"""Building blocks of the Llama layout: RMSNorm, rotary position embedding, SwiGLU MLP.

Conventions follow Hugging Face `modeling_llama.py` (rotate_half RoPE, module names) so that a
state dict of this model loads into `LlamaForCausalLM` unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """Root-mean-square norm (Zhang & Sennrich 2019): no mean subtraction, no bias."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Normalise in fp32 like HF: bf16 sums of squares lose too much precision.
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


class RotaryEmbedding(nn.Module):
    """cos/sin tables of RoPE (Su et al. 2021) for positions 0..max_positions-1."""

    def __init__(self, head_dim: int, max_positions: int, theta: float = 10_000.0):
        super().__init__()
        inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)
        self.register_buffer("inv_freq", inv_freq, persistent=False)  # (hd/2,)
        self.max_positions = max_positions
        cos, sin = self._tables(max_positions)
        # Not persistent: derived from the config, never part of the weights (as in HF).
        self.register_buffer("cos", cos, persistent=False)  # (P, hd)
        self.register_buffer("sin", sin, persistent=False)  # (P, hd)

    def _tables(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        t = torch.arange(n, dtype=torch.float32, device=self.inv_freq.device)
        freqs = torch.outer(t, self.inv_freq)  # (P, hd/2)
        emb = torch.cat((freqs, freqs), dim=-1)  # (P, hd): HF's layout, halves repeated
        return emb.cos(), emb.sin()

    def extend(self, max_positions: int) -> None:
        """Grow the tables (generation past the trained length); a no-op when long enough."""
        if max_positions > self.cos.shape[0]:
            cos, sin = self._tables(max_positions)
            self.cos, self.sin = cos, sin

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """cos, sin for `positions` (B, T) -> each (B, 1, T, hd), broadcastable over heads."""
        # No bounds check here: it would force a device sync every step (see `extend`).
        return self.cos[positions].unsqueeze(1), self.sin[positions].unsqueeze(1)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) on the last dim split in halves (HF's convention, not interleaved)."""
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((-x2, x1), dim=-1)


def apply_rotary(
    x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> torch.Tensor:  # x: (B, H, T, hd); cos, sin: (B, 1, T, hd)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return x * cos + rotate_half(x) * sin


class SwiGLU(nn.Module):
    """The gated MLP of Llama (Shazeer 2020): down(silu(gate(x)) * up(x))."""

    def __init__(self, d_model: int, hidden: int):
        super().__init__()
        self.gate_proj = nn.Linear(d_model, hidden, bias=False)
        self.up_proj = nn.Linear(d_model, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, d_model, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, C) -> (B, T, C)
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))
