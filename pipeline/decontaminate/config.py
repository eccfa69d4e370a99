"""Configuration of the decontaminate stage (off unless `enabled`)."""

from __future__ import annotations

from pydantic import Field, model_validator

from pipeline.core.base_config import StrictModel

# Fields an evaluation item's text is taken from, when present: those of common benchmark files
# (lm-evaluation-harness tasks, MMLU, HellaSwag, ARC, GSM8K, SQuAD-style) and plain `text`.
DEFAULT_TEXT_FIELDS = [
    "text",
    "question",
    "query",
    "prompt",
    "context",
    "passage",
    "ctx",
    "input",
    "answer",
    "answers",
    "choices",
    "endings",
    "target",
    "output",
]


class DecontaminateConfig(StrictModel):
    """Removes documents sharing a word n-gram with an evaluation item (GPT-3, lm-eval: 13)."""

    enabled: bool = False
    """Run the stage (between dedup and tokenize); off, tokenize reads dedup."""
    eval_sets: list[str] = Field(default_factory=list)
    """Evaluation sets: JSONL (also .jsonl.gz) or Parquet files, or directories of them (an
    lm-eval task directory with local data files). Every item must stay out of the corpus."""
    text_fields: list[str] = Field(default_factory=lambda: list(DEFAULT_TEXT_FIELDS))
    """Fields of an item whose text counts (strings, or lists of strings such as `choices`)."""
    ngram: int = Field(13, ge=3, le=64)
    """Words per n-gram, after normalization (lower case, punctuation and spacing removed)."""
    min_item_words: int = Field(8, ge=1)
    """An item shorter than `ngram` words counts as one n-gram of its own length, if it has at
    least this many words (shorter ones are too common to mean a copy)."""
    workers: int = Field(2, ge=1)
    """Worker processes, one input shard at a time each."""
    compression: str = "zstd"
    """Compression of the Arrow IPC output shards (zstd, lz4 or none)."""

    @model_validator(mode="after")
    def _needs_eval_sets(self) -> DecontaminateConfig:
        if self.enabled and not self.eval_sets:
            raise ValueError("`eval_sets` is empty: name at least one evaluation set to enable it")
        return self
