"""Configuration of supervised fine-tuning (full or LoRA) from the pretrained weights."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from pipeline.core.base_config import StrictModel
from pipeline.pretrain.config import (
    Betas,
    Experiment,
    MaxSteps,
    MinLr,
    PeakLr,
    TrainingConfig,
    WarmupSteps,
    WeightDecay,
)

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class LoraSettings(StrictModel):
    """Low-rank adapters (Hu et al. 2021) through peft; merged into the weights after training."""

    r: int = Field(8, ge=1)
    """Rank of each adapter (the inner width of B @ A)."""
    alpha: float = Field(16.0, gt=0)
    """Scaling numerator: the adapter's update is multiplied by alpha / r."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout on the adapter's input during training."""
    targets: list[str] = Field(default_factory=lambda: list(LORA_TARGETS))
    """Module names that get adapters: the attention and MLP projections by default."""


class FinetuneConfig(TrainingConfig):
    """How the pretrained model is fine-tuned on instruction data (`<run>/finetune/`).

    The loop, optimizer, devices and tracking keys are pretraining's (`TrainingConfig`), with
    fine-tuning's own defaults where they differ: fewer steps, lower rates, no weight decay,
    Adam's usual betas, its own MLflow experiment.
    """

    section: ClassVar[str] = "finetune"

    data: str = "data/sample/python-docs-instructions.jsonl"
    """Instruction data, JSONL: {"instruction", "input"?, "output"} or {"messages": [...]}."""
    method: Literal["full", "lora"] = "lora"
    """Train every weight (full) or low-rank adapters only (lora, merged after training)."""
    lora: LoraSettings = Field(default_factory=LoraSettings)
    """LoRA settings (when `method` is lora)."""
    min_response_tokens: int = Field(8, ge=1)
    """A too-long sample is cut to fit if this many response tokens remain, else rejected."""
    val_fraction: float = Field(0.1, gt=0.0, lt=1.0)
    """Share of samples in the validation split, chosen by a hash of the sample id."""

    # Shared keys with fine-tuning's defaults (LoRA takes larger rates than full fine-tuning).
    max_steps: MaxSteps = 200
    lr: PeakLr = 1e-3
    min_lr: MinLr = 1e-4
    warmup_steps: WarmupSteps = 10
    weight_decay: WeightDecay = 0.0
    betas: Betas = (0.9, 0.999)
    mlflow_experiment: Experiment = "lmpipe-finetune"

    @model_validator(mode="after")
    def _check_warmup(self) -> FinetuneConfig:
        if self.warmup_steps >= self.max_steps:
            raise ValueError("`finetune.warmup_steps` must be smaller than `finetune.max_steps`")
        return self
