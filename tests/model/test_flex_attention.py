"""The `flex` masked-attention kernel: flex_attention with a document BlockMask gives the masked
SDPA path's logits and loss.

torch 2.13 runs flex_attention on CPU eagerly (no compile; the first call traces it in about two
seconds) and forward only: it raises on inputs that require grad. So these tests compare
forward passes under no_grad, and the backward's refusal is tested as such.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.nn.attention.flex_attention import create_mask

from pipeline.model import DecoderLM, ModelConfig, document_positions
from pipeline.model.attention import build_layout
from pipeline.pretrain.config import PretrainConfig
from pipeline.pretrain.module import PretrainModule

pytestmark = pytest.mark.filterwarnings("ignore:flex_attention called without torch.compile")

EOD = 0
T = 300  # three of flex's 128-token blocks, the last one partial


def packed_batch() -> torch.Tensor:
    """(3, T) rows of packed documents; `ends` are EOD positions (a document ends with its EOD).

    Row 0: documents of 10, 1 (a lone EOD), 140 (across the first block boundary) and 149 tokens;
    row 1: a 1-token document first, then 129 (ending exactly past block 0), 70 and a 100-token
    tail with no EOD; row 2: one document that crosses nothing (no boundary in the row).
    """
    g = torch.Generator().manual_seed(7)
    x = torch.randint(1, 96, (3, T), generator=g)
    for row, ends in enumerate([[9, 10, 150, 299], [0, 129, 199], []]):
        for e in ends:
            x[row, e] = EOD
    return x


def model(**kw) -> DecoderLM:
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=96, block_size=T, n_layers=2, n_heads=4, d_model=32, **kw)
    return DecoderLM(cfg).eval()


@pytest.mark.parametrize("kv_heads", [0, 2])
def test_flex_gives_the_masked_sdpa_logits_and_loss(kv_heads):
    m = model(n_kv_heads=kv_heads)
    x = packed_batch()
    positions, doc_ids = document_positions(x, EOD)
    labels = torch.roll(x, -1, dims=1)
    with torch.no_grad():
        m.masked_attention = "sdpa"
        sdpa = m(x, positions, doc_ids)  # (3, T, V)
        m.masked_attention = "flex"
        flex = m(x, positions, doc_ids)
        causal = m(x)  # no doc_ids: SDPA's causal path whatever the kernel setting
    torch.testing.assert_close(flex, sdpa, atol=1e-5, rtol=1e-5)
    loss_sdpa = F.cross_entropy(sdpa.flatten(0, 1), labels.flatten())
    loss_flex = F.cross_entropy(flex.flatten(0, 1), labels.flatten())
    assert abs(loss_flex.item() - loss_sdpa.item()) < 1e-5
    # The row without a boundary is the causal path's row; the packed rows are not.
    torch.testing.assert_close(flex[2], causal[2], atol=1e-5, rtol=1e-5)
    assert (flex[0] - causal[0]).abs().max() > 1e-2


def test_the_block_mask_is_the_dense_mask_and_skips_blocks_between_documents():
    x = packed_batch()
    _, doc_ids = document_positions(x, EOD)
    dense = build_layout(doc_ids, T, 0, x.device, varlen=False, masked="sdpa").mask  # (B,1,T,T)
    layout = build_layout(doc_ids, T, 0, x.device, varlen=False, masked="flex")
    assert layout.mask is None and layout.cu_seqlens is None
    block_mask = layout.block_mask
    token_level = create_mask(block_mask.mask_mod, 3, 1, T, T, device="cpu")  # (B, 1, T, T)
    assert torch.equal(token_level, dense)
    # Block level: which (query block, key block) pairs the kernel visits, partial or full.
    visited = block_mask.to_dense()[:, 0].bool()  # (B, 3, 3)
    causal_blocks = torch.ones(3, 3, dtype=torch.bool).tril()
    assert torch.equal(visited[2], causal_blocks)  # one document: every causal block
    # Row 1: the document ending at 129 is the only one in key block 0 that later queries could
    # see, and it ends at query 129 (block 1): query block 2 skips key block 0.
    assert visited[1].tolist() == [[True, False, False], [True, True, False], [False, True, True]]


def test_flex_refuses_a_cpu_backward_and_a_cpu_training_config():
    m = model().train()
    x = packed_batch()
    m.masked_attention = "flex"
    with pytest.raises(NotImplementedError, match="no backward on CPU"):
        m(x, *document_positions(x, EOD))
    with pytest.raises(ValueError, match="cannot train on the CPU"):
        PretrainConfig(masked_attention="flex", accelerator="cpu")
    PretrainConfig(masked_attention="flex", accelerator="cpu", document_masking=False)
    PretrainConfig(masked_attention="flex", accelerator="gpu")


def test_the_pretrain_module_hands_its_kernel_to_the_model():
    cfg = ModelConfig(vocab_size=96, block_size=T, n_layers=2, n_heads=4, d_model=32)
    module = PretrainModule({"masked_attention": "flex"}, cfg.model_dump())
    assert module.model.masked_attention == "flex"
    assert PretrainModule({}, cfg.model_dump()).model.masked_attention == "sdpa"
