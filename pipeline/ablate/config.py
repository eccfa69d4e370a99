"""Configuration of a data-recipe ablation (`lmpipe ablate`): seeds, eval split, bootstrap."""

from __future__ import annotations

from pydantic import Field

from pipeline.core.base_config import StrictModel


class AblateConfig(StrictModel):
    """How variants are compared: proxy runs per variant, the held-out eval set, the intervals."""

    seeds: int = Field(1, ge=1)
    """Proxy-model runs per variant (seeds `pretrain.seed`, +1, ...); per-document losses are
    averaged over seeds before the bootstrap."""
    eval_fraction: float = Field(0.1, gt=0.0, le=0.5)
    """Share of documents (by id hash) held out for evaluation; becomes every variant's
    `tokenize.val_fraction`, so no variant trains on a held-out document."""
    eval_max_documents: int = Field(0, ge=0)
    """Score at most this many eval documents (the first by id hash); 0 = all."""
    bootstrap_samples: int = Field(2000, ge=100)
    """Paired bootstrap resamples of the eval documents."""
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    """Coverage of the interval of each variant's difference from the base."""
    mlflow_experiment: str = "lmpipe-ablate"
    """MLflow experiment of the ablation's parent run and its per-variant/seed child runs."""
