"""Attention: the CPU flash kernel, document masking of packed sequences, the KV-cache hook."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

from pipeline.model import DecoderLM, KVCache, ModelConfig, document_positions

EOD = 0


def tiny(**kw) -> DecoderLM:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=96, block_size=64, n_layers=2, n_heads=4, d_model=32, **kw)
    return DecoderLM(cfg).eval()


def doc(n: int, seed: int) -> torch.Tensor:
    """A document of n tokens ending with EOD, (1, n)."""
    g = torch.Generator().manual_seed(seed)
    tokens = torch.randint(1, 96, (1, n), generator=g)
    tokens[0, -1] = EOD
    return tokens


def test_positions_restart_and_ids_count_documents():
    packed = torch.tensor([[5, 6, EOD, 7, EOD, 8, 9, 4]])
    positions, doc_ids = document_positions(packed, EOD)
    assert positions.tolist() == [[0, 1, 2, 0, 1, 0, 1, 2]]
    assert doc_ids.tolist() == [[0, 0, 0, 1, 1, 2, 2, 2]]


@pytest.mark.parametrize("kv_heads", [0, 2])
def test_attention_runs_on_the_cpu_flash_kernel(kv_heads):
    """Only the flash backend is allowed: SDPA raises if the model needs anything else."""
    model = tiny(n_kv_heads=kv_heads).train()
    packed = torch.cat([doc(20, 1), doc(27, 2)], dim=1)  # (1, 47), a boundary inside
    positions, doc_ids = document_positions(packed, EOD)
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]):
        causal = model(packed)  # the is_causal fast path
        masked = model(packed, positions, doc_ids)  # the block-diagonal boolean mask
        (causal.sum() + masked.sum()).backward()
    assert all(p.grad is not None for p in model.parameters())
    with sdpa_kernel([SDPBackend.FLASH_ATTENTION]), pytest.raises(RuntimeError):
        # The control: a float mask is something this kernel cannot take.
        torch.nn.functional.scaled_dot_product_attention(
            *torch.randn(3, 1, 2, 8, 4), attn_mask=torch.zeros(8, 8, dtype=torch.float64)
        )


@pytest.mark.parametrize("kv_heads", [0, 2])
def test_document_masking_gives_the_same_logits_alone_and_packed(kv_heads):
    model = tiny(n_kv_heads=kv_heads)
    first, second = doc(23, 1), doc(31, 2)
    packed = torch.cat([first, second], dim=1)  # (1, 54)
    with torch.no_grad():
        alone = model(second)  # (1, 31, V)
        positions, doc_ids = document_positions(packed, EOD)
        masked = model(packed, positions, doc_ids)[:, 23:]
        leaky = model(packed)[:, 23:]  # plain causal attention sees the first document
    torch.testing.assert_close(masked, alone, atol=1e-5, rtol=1e-5)
    assert (leaky - alone).abs().max() > 1e-2


def test_rows_of_a_batch_are_masked_independently():
    model = tiny()
    a = torch.cat([doc(10, 1), doc(22, 2)], dim=1)  # (1, 32)
    b = torch.cat([doc(25, 3), doc(7, 4)], dim=1)  # (1, 32)
    batch = torch.cat([a, b])  # (2, 32)
    with torch.no_grad():
        together = model(batch, *document_positions(batch, EOD))
        single = model(b, *document_positions(b, EOD))
    torch.testing.assert_close(together[1:], single, atol=1e-5, rtol=1e-5)


def test_kv_cache_decoding_matches_the_full_forward():
    model = tiny(n_kv_heads=2)
    tokens = doc(40, 5)
    cache = KVCache(model.config, batch_size=1, max_len=64)
    with torch.no_grad():
        full = model(tokens)
        steps = [model(tokens[:, :25], kv_cache=cache)]  # prefill
        steps += [model(tokens[:, t : t + 1], kv_cache=cache) for t in range(25, 32)]  # decode
        steps.append(model(tokens[:, 32:], kv_cache=cache))  # a chunk after a prefix
    assert cache.length == 40
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="KV cache holds"):
        model(doc(30, 6), kv_cache=cache)
