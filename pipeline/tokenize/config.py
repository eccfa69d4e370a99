"""Configuration of the tokenization stage."""

from __future__ import annotations

from pydantic import Field

from pipeline.core.base_config import StrictModel


class TokenizeConfig(StrictModel):
    """How the curated corpus becomes a BPE tokenizer and memory-mappable token shards."""

    vocab_size: int = Field(32_000, ge=512, le=2**20)
    """Target vocabulary of the trained tokenizer, special tokens included (padded to x64 after)."""
    min_frequency: int = Field(2, ge=1)
    """A pair of symbols is merged only if it occurs at least this often in the training text."""
    tokenizer_path: str | None = None
    """An existing byte-level BPE `tokenizer.json` to reuse instead of training one."""
    val_fraction: float = Field(0.01, ge=0.0, le=0.5)
    """Share of documents in the validation split, chosen by a hash of the document id."""
    tokenizer_sample_fraction: float = Field(1.0, gt=0.0, le=1.0)
    """Share of train-split documents (by id hash) the tokenizer is trained on."""
    tokenizer_max_chars: int = Field(2_000_000_000, ge=1)
    """Tokenizer training stops reading text after this many characters."""
    workers: int = Field(2, ge=1)
    """Encoding threads (the engines release the GIL), or Ray tasks with `parallel.executor: ray`;
    input shards are split across them (one shard is encoded by one worker)."""
    batch_documents: int = Field(512, ge=1)
    """Documents read and encoded together inside a worker (one `encode_batch` call on HF)."""
