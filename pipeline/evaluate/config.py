"""Configuration of the evaluation stage: held-out losses, generation samples, the gate."""

from __future__ import annotations

from pydantic import Field

from pipeline.base_config import StrictModel

DEFAULT_PROMPTS = [
    "What does the `json` module do?",
    "What does the `os.path` module do?",
    "What does `random.choice` do?",
    'What is the Python documentation page "9. Classes" about?',
]


class GateConfig(StrictModel):
    """The release gate: registration moves the `champion` alias only when it passes."""

    metric: str = "sft_val_loss"
    """Metric judged (a key of the evaluate manifest's `metrics`)."""
    baseline: str | None = "base_sft_val_loss"
    """Metric it is compared with; null = compare with `threshold` alone."""
    threshold: float = 0.0
    """With a baseline: the margin by which `metric` must beat it; without: the bound itself."""
    higher_is_better: bool = False
    """False for losses (pass when lower), True for scores such as accuracy."""


class EvaluateConfig(StrictModel):
    """How the fine-tuned model is compared with the base model (`<run>/evaluate/`)."""

    batch_size: int = Field(8, ge=1)
    """Sequences per forward pass when computing losses."""
    pretrain_val_batches: int = Field(16, ge=1)
    """Batches of held-out pretraining windows (`<run>/tokenize/val`) scored per model."""
    prompts: list[str] = Field(default_factory=lambda: list(DEFAULT_PROMPTS))
    """Fixed prompts answered by both models (user turns of the chat template)."""
    system: str | None = None
    """System message put before every prompt; null = none."""
    max_new_tokens: int = Field(48, ge=1)
    """Longest generated answer, in tokens."""
    temperature: float = Field(0.0, ge=0.0)
    """Sampling temperature; 0 = greedy decoding."""
    top_k: int | None = Field(None, ge=1)
    """Sample among the k most likely tokens only (null = all)."""
    top_p: float | None = Field(None, gt=0.0, le=1.0)
    """Nucleus sampling: the smallest set of tokens with this much probability (null = all)."""
    seed: int = 0
    """Seed of sampled decoding (greedy ignores it)."""
    gate: GateConfig = Field(default_factory=GateConfig)
    """The pass/fail rule registration uses."""
