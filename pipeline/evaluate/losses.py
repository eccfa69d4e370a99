"""Held-out losses of a model, outside Lightning: pretraining windows and SFT responses."""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F

from pipeline.finetune.data import read_split
from pipeline.finetune.module import IGNORE, MaskedSamples, collate
from pipeline.pretrain.data import PackedCollate, PackedWindows, TokenStream


@torch.no_grad()
def summed_loss(model: torch.nn.Module, batches) -> tuple[float, int]:
    """(sum of target-token cross-entropies, number of targets) over `batches`."""
    model.eval()
    total, count = 0.0, 0
    for batch in batches:
        logits = model(batch["input_ids"], batch.get("positions"), batch.get("doc_ids"))
        labels = batch["labels"]  # (B, T)
        loss = F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(), reduction="sum")
        total += float(loss)
        count += int((labels != IGNORE).sum())
    return total, count


def mean_and_ppl(total: float, count: int) -> tuple[float, float]:
    if count == 0:
        raise ValueError("no target tokens to evaluate on")
    loss = total / count
    return loss, math.exp(min(loss, 50.0))


def pretrain_batches(tokenize_dir: Path, block: int, batch: int, batches: int, eod: int | None):
    """The first `batches` batches of validation windows, document-masked like training."""
    windows = PackedWindows(TokenStream(Path(tokenize_dir) / "val"), block)
    n = min(len(windows), batch * batches)
    if n == 0:
        raise ValueError(f"{tokenize_dir}/val has fewer than {block + 1} tokens")
    collate_windows = PackedCollate(eod)
    for start in range(0, n, batch):
        yield collate_windows([windows[i] for i in range(start, min(start + batch, n))])


def sft_batches(finetune_dir: Path, block: int, pad_id: int, batch: int):
    """Every validation sample of the fine-tuning split, response tokens as targets."""
    samples = MaskedSamples(*read_split(finetune_dir, "val"), block, pad_id)
    for start in range(0, len(samples), batch):
        yield collate([samples[i] for i in range(start, min(start + batch, len(samples)))])
