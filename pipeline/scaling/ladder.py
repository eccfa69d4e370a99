"""The ladder: one pretraining config per (size, tokens-per-parameter) point, and their sizes.

Parameter counts come from the real model (`DecoderLM`) built on PyTorch's meta device, so no
memory is allocated even for a 1B target. "Non-embedding" follows Kaplan et al. 2020: every
weight except the token embedding and the output projection (`lm_head`, tied or not).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pipeline.config import PipelineConfig
from pipeline.core.layout import RunLayout
from pipeline.model.config import ModelConfig
from pipeline.scaling.config import LadderSize, ScalingConfig
from pipeline.stages import StageName

SCALING_DIR = "scaling"
# Any vocabulary works for counting: the embedding rows are excluded from N.
_COUNTING_VOCAB = 64


@dataclass(frozen=True)
class LadderPoint:
    """One training run of the sweep, planned before it runs."""

    name: str
    size: str
    d_model: int
    n_layers: int
    n_heads: int
    tokens_per_param: float
    non_embedding_params: int
    steps: int
    tokens: int
    """Planned training tokens (`steps` x tokens per step)."""

    @property
    def compute(self) -> float:
        """Training FLOPs by the usual C = 6 N D (non-embedding N, Kaplan et al. 2020)."""
        return 6.0 * self.non_embedding_params * self.tokens

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "compute": self.compute}


def non_embedding_params(model: ModelConfig) -> int:
    """Weights of the network minus the token embedding and the output projection."""
    import torch

    from pipeline.model import DecoderLM

    cfg = model.model_copy(update={"vocab_size": model.vocab_size or _COUNTING_VOCAB})
    with torch.device("meta"):  # shapes only, no memory
        net = DecoderLM(cfg)
    skip = {id(net.model.embed_tokens.weight), id(net.lm_head.weight)}
    return sum(p.numel() for p in net.parameters() if id(p) not in skip)


def tokens_per_step(config: PipelineConfig) -> int:
    """Tokens in one optimizer step of `config.pretrain` (all devices and nodes)."""
    p = config.pretrain
    devices = p.devices if isinstance(p.devices, int) else 1
    return p.micro_batch_size * p.grad_accum * p.model.block_size * devices * p.num_nodes


def size_model(base: ModelConfig, size: LadderSize) -> ModelConfig:
    """`base` with the ladder size's shape (GQA is dropped: heads change per size)."""
    shape = size.model_dump()
    return ModelConfig.model_validate({**base.model_dump(), **shape, "n_kv_heads": 0})


def plan_ladder(config: PipelineConfig) -> list[LadderPoint]:
    """Every (size, tokens-per-parameter) point of `config.scaling`, smallest size first."""
    sc: ScalingConfig = config.scaling
    per_step = tokens_per_step(config)
    points = []
    for size in sorted(
        sc.sizes, key=lambda s: non_embedding_params(size_model(config.pretrain.model, s))
    ):
        n = non_embedding_params(size_model(config.pretrain.model, size))
        for ratio in sc.tokens_per_param:
            steps = max(sc.min_steps, math.ceil(ratio * n / per_step))
            points.append(
                LadderPoint(
                    name=f"{size.name}-tpp{ratio:g}",
                    size=size.name,
                    d_model=size.d_model,
                    n_layers=size.n_layers,
                    n_heads=size.n_heads,
                    tokens_per_param=ratio,
                    non_embedding_params=n,
                    steps=steps,
                    tokens=steps * per_step,
                )
            )
    return points


def point_config(
    config: PipelineConfig, point: LadderPoint, parent_run_id: str = ""
) -> PipelineConfig:
    """The pipeline config that trains one ladder point (validated like any config)."""
    sc, base = config.scaling, config.pretrain
    size = next(s for s in sc.sizes if s.name == point.size)
    warmup = min(point.steps - 1, max(1, round(sc.warmup_fraction * point.steps)))
    pretrain = {
        **base.model_dump(mode="json"),
        "model": size_model(base.model, size).model_dump(mode="json"),
        "max_steps": point.steps,
        "warmup_steps": warmup,
        "val_interval": point.steps,  # validate once, on the final weights
        "checkpoint_interval": max(base.checkpoint_interval, point.steps // 2),
        "log_interval": min(base.log_interval, point.steps),
        "mlflow_experiment": sc.mlflow_experiment,
        "mlflow_parent_run_id": parent_run_id,
    }
    return PipelineConfig.model_validate(
        {**config.model_dump(mode="json"), StageName.PRETRAIN: pretrain}
    )


def point_dir(run_dir: str | Path, point: LadderPoint) -> Path:
    """`<run>/scaling/<point>/pretrain/`: the point's stage directory."""
    # Each point is a run of its own under `<run_dir>/scaling/<point>/`, laid out like any run.
    return RunLayout(Path(run_dir) / SCALING_DIR / point.name).pretrain


def target_model(path: str | Path) -> tuple[ModelConfig, int] | None:
    """The `pretrain.model` of the target config and its planned training tokens (None: no file)."""
    from pipeline.config import load_config

    if not path or not Path(path).is_file():
        return None
    target = load_config(path)
    return target.pretrain.model, tokens_per_step(target) * target.pretrain.max_steps
