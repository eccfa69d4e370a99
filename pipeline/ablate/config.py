"""Configuration of a data-recipe ablation (`lmpipe ablate`): seeds, eval split, bootstrap."""

from __future__ import annotations

from pydantic import Field, field_validator

from pipeline.core.base_config import StrictModel


class AblateConfig(StrictModel):
    """How variants are compared: proxy runs per variant, the held-out eval set, the intervals."""

    seeds: int = Field(1, ge=1)
    """Proxy-model runs per variant (seeds `pretrain.seed`, +1, ...); per-document losses are
    averaged over seeds before the bootstrap."""
    eval_fraction: float = Field(0.1, gt=0.0, le=0.5)
    """Share of documents (by id hash) held out for evaluation; becomes every variant's
    `tokenize.val_fraction`, so no variant trains on a held-out document. With `eval_set`, the
    eval documents are the file's; this share is still every variant's validation split."""
    eval_set: list[str] = Field(default_factory=list)
    """Score every variant on these files instead of the base corpus's held-out slice: JSONL
    (one object a line, text in `eval_text_field`, optional `id`) or Parquet, paths or globs;
    at least 2 documents. The user makes sure they are not in any variant's training data (a
    variant that runs the decontaminate stage removes pages sharing their 13-grams, unless
    `decontaminate.include_project_evals: false`): the report counts the eval documents whose
    id or text occurs in each variant's corpus."""
    eval_text_field: str = "text"
    """The field (JSONL) or column (Parquet) of an `eval_set` file that holds the text."""
    eval_max_documents: int = Field(0, ge=0)
    """Score at most this many eval documents (the first by id hash; of `eval_set`, the first
    in file order); 0 = all."""
    bootstrap_samples: int = Field(2000, ge=100)
    """Paired bootstrap resamples of the eval documents."""
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    """Coverage of the interval of each variant's difference from the base."""
    mlflow_experiment: str = "lmpipe-ablate"
    """MLflow experiment of the ablation's parent run and its per-variant/seed child runs."""

    @field_validator("eval_set", mode="before")
    @classmethod
    def _one_file(cls, value: object) -> object:
        """`eval_set: held_out.jsonl` is a list of one file."""
        return [value] if isinstance(value, str) else value
