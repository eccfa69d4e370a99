"""Autoregressive decoding: greedy or sampled (temperature, top-k, top-p), with a KV cache.

Imports torch only: the registered MLflow model ships `pipeline/model` as code. With the cache,
the prompt is one forward pass and every later step feeds one token; without it, every step
re-runs the whole sequence. Both see the same positions and give the same greedy tokens. The
context is the model's `block_size`: a longer prompt keeps its last tokens, and decoding stops
when the sequence fills the context.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

from pipeline.model.attention import KVCache

DEFAULT_EOS_IDS = (0, 5)
"""`<|endoftext|>` and `<|end|>` of a tokenizer trained by the tokenize stage (ids 0 and 5)."""


def filter_logits(
    logits: torch.Tensor, top_k: int | None = None, top_p: float | None = None
) -> torch.Tensor:  # (V,) -> (V,), excluded tokens at -inf
    """Keep the `top_k` most likely tokens, then the smallest set whose mass reaches `top_p`."""
    if top_k is not None and 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k).values[-1]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and 0.0 < top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)  # (V,)
        probs = torch.softmax(sorted_logits, dim=-1)
        # Drop a token when the tokens before it already reach top_p (the first always stays).
        drop_sorted = probs.cumsum(dim=-1) - probs >= top_p  # (V,)
        drop = torch.zeros_like(drop_sorted).scatter(0, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def next_token(
    logits: torch.Tensor,  # (V,) logits of the last position
    temperature: float,
    top_k: int | None,
    top_p: float | None,
    generator: torch.Generator | None,
) -> int:
    """Greedy when `temperature` is 0, else a sample from the filtered, tempered softmax."""
    logits = logits.float()
    if temperature <= 0.0:
        return int(torch.argmax(logits))
    probs = torch.softmax(filter_logits(logits / temperature, top_k, top_p), dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))


def _param_device_dtype(model: torch.nn.Module) -> tuple[torch.device, torch.dtype]:
    p = next(model.parameters())
    return p.device, p.dtype


@torch.no_grad()
def generate(
    model: torch.nn.Module,
    prompt_ids: list[int],
    *,
    max_new_tokens: int = 64,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    eos_ids: Iterable[int] = DEFAULT_EOS_IDS,
    use_cache: bool = True,
    seed: int | None = None,
) -> list[int]:
    """The new tokens after `prompt_ids` (a stop token, if produced, is the last one returned).

    `model` is a `DecoderLM` (`forward(idx, kv_cache=...)` -> (B, T, V) logits). `seed` makes
    sampling reproducible; greedy decoding (temperature 0) ignores it.
    """
    if not prompt_ids:
        raise ValueError("generate needs at least one prompt token")
    block = model.config.block_size
    stops = set(int(i) for i in eos_ids)
    ids = [int(i) for i in prompt_ids][-max(1, block - max_new_tokens) :]
    budget = min(max_new_tokens, block - len(ids))
    device, dtype = _param_device_dtype(model)
    generator = None
    if seed is not None:
        generator = torch.Generator(device=device).manual_seed(seed)
    was_training = model.training
    model.eval()
    try:
        step = _cached_steps if use_cache else _uncached_steps
        return step(
            model, ids, budget, device, dtype, stops, (temperature, top_k, top_p, generator)
        )
    finally:
        model.train(was_training)


def _cached_steps(model, ids, budget, device, dtype, stops, sampling) -> list[int]:
    cache = KVCache(model.config, 1, len(ids) + budget, device=device, dtype=dtype)
    feed = torch.tensor([ids], device=device)  # (1, T) the whole prompt once
    out: list[int] = []
    for _ in range(budget):
        logits = model(feed, kv_cache=cache)[0, -1]  # (V,)
        token = next_token(logits, *sampling)
        out.append(token)
        if token in stops:
            break
        feed = torch.tensor([[token]], device=device)  # (1, 1)
    return out


def _uncached_steps(model, ids, budget, device, dtype, stops, sampling) -> list[int]:
    seq = list(ids)
    out: list[int] = []
    for _ in range(budget):
        logits = model(torch.tensor([seq], device=device))[0, -1]  # (V,)
        token = next_token(logits, *sampling)
        out.append(token)
        seq.append(token)
        if token in stops:
            break
    return out
