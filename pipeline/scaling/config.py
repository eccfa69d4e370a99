"""Configuration of a scaling-law sweep: the ladder of model sizes, token budgets, the holdout."""

from __future__ import annotations

from pydantic import Field, model_validator

from pipeline.core.base_config import StrictModel


class LadderSize(StrictModel):
    """One model size of the ladder; everything else comes from `pretrain.model`."""

    d_model: int = Field(ge=8)
    """Width of the residual stream."""
    n_layers: int = Field(ge=1)
    """Transformer blocks."""
    n_heads: int = Field(ge=1)
    """Query heads per attention layer (`d_model / n_heads` must be even)."""
    ffn_hidden: int = Field(0, ge=0)
    """SwiGLU inner width; 0 = Llama's rule (8/3 x d_model rounded up to a multiple of 64)."""

    @model_validator(mode="after")
    def _check(self) -> LadderSize:
        if self.d_model % self.n_heads or (self.d_model // self.n_heads) % 2:
            raise ValueError("`scaling.sizes`: d_model / n_heads must be a whole, even number")
        return self

    @property
    def name(self) -> str:
        return f"d{self.d_model}-l{self.n_layers}-h{self.n_heads}"


def _demo_ladder() -> list[LadderSize]:
    # 16k to 222k non-embedding parameters (13x): minutes on 2 CPU cores (configs/demo.yaml).
    shapes = [(32, 1, 2), (48, 1, 4), (64, 1, 4), (64, 2, 4), (96, 2, 4)]
    return [LadderSize(d_model=d, n_layers=n, n_heads=h) for d, n, h in shapes]


class ScalingConfig(StrictModel):
    """A ladder of pretraining runs from the `pretrain` section, and the scaling-law fits."""

    sizes: list[LadderSize] = Field(default_factory=_demo_ladder, min_length=2)
    """Model sizes, smallest first; each is `pretrain.model` with these shapes."""
    tokens_per_param: list[float] = Field(default_factory=lambda: [2.0], min_length=1)
    """Training tokens per non-embedding parameter, one run per size and value (2+: D/N fit)."""
    min_steps: int = Field(20, ge=2)
    """Fewest optimizer steps of any point (the smallest models would otherwise barely train)."""
    warmup_fraction: float = Field(0.1, ge=0, lt=1)
    """Warmup steps of each point as a fraction of its steps (then cosine decay to `min_lr`)."""
    holdout: int = Field(1, ge=0)
    """Largest sizes left out of the validation fit; its prediction is checked against them."""
    target_config: str = "configs/124m.yaml"
    """Config file whose `pretrain.model` the fitted law is extrapolated to ('' = none)."""
    max_parallel: int = Field(1, ge=1)
    """Ladder points trained at once (1 on a CPU; the number of GPU groups on a cluster)."""
    mlflow_experiment: str = "lmpipe-scaling"
    """MLflow experiment of the parent run and its nested child (per-point) runs."""
    bootstrap_samples: int = Field(2000, ge=0)
    """Parameter draws from the fit covariance for the uncertainty of derived quantities."""

    @model_validator(mode="after")
    def _check(self) -> ScalingConfig:
        if any(r <= 0 for r in self.tokens_per_param):
            raise ValueError("`scaling.tokens_per_param` values must be positive")
        if len({s.name for s in self.sizes}) != len(self.sizes):
            raise ValueError("`scaling.sizes` has the same shape twice")
        return self
