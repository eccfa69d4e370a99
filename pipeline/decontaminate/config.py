"""Configuration of the decontaminate stage (off unless `enabled`)."""

from __future__ import annotations

from pydantic import Field, PrivateAttr, model_validator

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
    include_project_evals: bool = True
    """Also keep the project's own evaluation data out: the held-out questions and answers of
    the fine-tuning set (`finetune.data`'s `val` split, what evaluate's `mc` task asks) and the
    ablation's eval documents (`ablate.eval_set`, its `eval_text_field`)."""
    text_fields: list[str] = Field(default_factory=lambda: list(DEFAULT_TEXT_FIELDS))
    """Fields of an item whose text counts (strings, or lists of strings such as `choices`)."""
    ngram: int = Field(13, ge=3, le=64)
    """Words per n-gram, after normalization (lower case, punctuation and spacing removed)."""
    min_item_words: int = Field(8, ge=1)
    """An item shorter than `ngram` words counts as one n-gram of its own length, if it has at
    least this many words (shorter ones are too common to mean a copy)."""
    max_index_mb: float = Field(1024.0, gt=0)
    """Largest sorted index of the evaluation n-grams (16 bytes each), in MiB; past it a Bloom
    filter of at most this size holds them (about 1.25 bytes each) and every hit is confirmed
    against the items, so a false positive never drops a document."""
    workers: int = Field(2, ge=1)
    """Worker processes, one input shard at a time each."""
    compression: str = "zstd"
    """Compression of the Arrow IPC output shards (zstd, lz4 or none)."""

    # The fine-tuning set and its validation fraction, from the `finetune` section
    # (`PipelineConfig` sets it): not a setting of this section, so not in its config hash; the
    # stage's plan fingerprints the file's bytes and the fraction instead.
    _held_out: tuple[str, float] | None = PrivateAttr(None)
    _ablate_sets: tuple[list[str], str] = PrivateAttr(([], "text"))

    def with_held_out(self, data: str, val_fraction: float) -> DecontaminateConfig:
        """This section reading the held-out split of `data` (the `finetune` section's)."""
        self._held_out = (data, val_fraction)
        return self

    def with_ablate_sets(self, paths: list[str], text_field: str) -> DecontaminateConfig:
        """This section reading the ablation's eval documents (the `ablate` section's)."""
        self._ablate_sets = (list(paths), text_field)
        return self

    @property
    def ablate_sets(self) -> tuple[list[str], str]:
        """(`ablate.eval_set` paths or globs, their text field), if included."""
        return self._ablate_sets if self.include_project_evals else ([], "text")

    @property
    def held_out(self) -> tuple[str, float] | None:
        """(fine-tuning data, val_fraction) whose held-out items count, if included."""
        return self._held_out if self.include_project_evals else None

    @model_validator(mode="after")
    def _needs_eval_sets(self) -> DecontaminateConfig:
        if self.enabled and not self.eval_sets and not self.include_project_evals:
            raise ValueError(
                "`eval_sets` is empty and `include_project_evals` is false: nothing to "
                "decontaminate against; name an evaluation set or include the project's"
            )
        return self
