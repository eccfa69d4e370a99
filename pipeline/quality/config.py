"""Configuration of the learned quality stage (off unless `enabled`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipeline.core.base_config import StrictModel

# Fields a reference record's text is taken from: plain `text`, instruction data (`instruction`,
# `input`, `output`; chat `messages`' contents, system turns left out) and common Q/A names.
DEFAULT_TEXT_FIELDS = ["text", "messages", "instruction", "input", "output", "prompt",
                       "response", "question", "answer"]  # fmt: skip
DEFAULT_THRESHOLD = 0.5


class QualityConfig(StrictModel):
    """Scores documents with a model of a reference set and keeps the best (DCLM, CCNet)."""

    enabled: bool = False
    """Run the stage (after dedup and decontaminate, before tokenize); off, tokenize reads the
    stage before it."""
    reference: list[str] = Field(default_factory=list)
    """Reference files to train on (good text): JSONL (`text`, instruction or chat records),
    Parquet, WARC/WET (pages extracted as clean does), or directories/globs of them."""
    model: str = ""
    """Apply this classifier instead of training one: a saved `quality_model.npz` or a
    registered version, `models:/NAME@ALIAS` or `models:/NAME/VERSION`."""
    kind: Literal["lm", "classifier", "combined"] = "lm"
    """What scores a document: `lm`, the word-order gain under a Kneser-Ney bigram model of the
    reference (CCNet-style); `classifier`, a logistic regression on hashed word 1-2-grams,
    reference against the run's own documents (DCLM/fastText-style); `combined`, both log-odds
    averaged. benchmarks/RESULTS.md "quality" measures each on every kind of junk."""
    text_fields: list[str] = Field(default_factory=lambda: list(DEFAULT_TEXT_FIELDS))
    """Fields of a JSONL/Parquet reference record whose text counts (strings or chat lists)."""
    sample_size: int = Field(2000, ge=10)
    """Documents of the run's own sampled (seeded) as the classifier's negatives."""
    heldout_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    """Share of the reference and of the sample held out for the logged precision/recall/AUC."""
    seed: int = 0
    """Seed of the sample, the held-out split and the shuffles: the stage is deterministic."""
    threshold: float | None = Field(None, ge=0.0, le=1.0)
    """Keep documents whose `quality_score` is at least this (default 0.5: for `lm`, the
    previous word helps predict the next); exclusive with `keep_fraction`."""
    keep_fraction: float | None = Field(None, gt=0.0, le=1.0)
    """Keep this share of the documents, the best scored (DCLM kept the top 10%)."""
    register_as: str = "lmpipe-quality"
    """Registered model name of a trained classifier in MLflow (MLFLOW_TRACKING_URI, else
    sqlite:///mlflow.db); empty: not logged."""
    tracking_uri: str = ""
    """MLflow tracking/registry URI of the classifier; empty: MLFLOW_TRACKING_URI, else
    sqlite:///mlflow.db (as `registry.tracking_uri`)."""
    alias: str = "current"
    """Alias the newly registered version gets (`models:/<register_as>@<alias>`)."""
    histogram_bins: int = Field(20, ge=2, le=200)
    """Bins of the score histogram in the manifest (the funnel and the Prefect artifact)."""
    workers: int = Field(2, ge=1)
    """Worker processes, one input shard at a time each."""
    compression: str = "zstd"
    """Compression of the Arrow IPC output shards (zstd, lz4 or none)."""

    @model_validator(mode="after")
    def _one_source_one_rule(self) -> QualityConfig:
        if self.enabled and bool(self.reference) == bool(self.model):
            raise ValueError(
                "name either `reference` (files to train on) or `model` (a classifier to apply)"
            )
        if self.threshold is not None and self.keep_fraction is not None:
            raise ValueError("set `threshold` or `keep_fraction`, not both")
        return self

    @property
    def cutoff(self) -> float:
        return DEFAULT_THRESHOLD if self.threshold is None else self.threshold
