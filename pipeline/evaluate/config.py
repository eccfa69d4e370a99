"""Configuration of the evaluation stage: held-out losses, generation samples, the gate."""

from __future__ import annotations

from pydantic import Field, model_validator

from pipeline.core.base_config import StrictModel

DEFAULT_PROMPTS = [
    "What does the `json` module do?",
    "What does the `os.path` module do?",
    "What does `random.choice` do?",
    'What is the Python documentation page "9. Classes" about?',
]


class GateConfig(StrictModel):
    """The release gate: registration moves the `champion` alias only when it passes."""

    metric: str = "sft_val_loss"
    """Metric judged: a key of the manifest's `metrics` (`sft_val_loss`, `cloze_acc`...)."""
    baseline: str | None = "base_sft_val_loss"
    """Metric it is compared with; null = compare with `threshold` alone."""
    threshold: float = 0.0
    """With a baseline: the margin by which `metric` must beat it; without: the bound itself."""
    higher_is_better: bool = False
    """False for losses (pass when lower), True for scores such as accuracy."""
    beat_champion: bool = False
    """Also beat `champion_<metric>` (`evaluate.champion` on this run's tasks), if it exists."""


class EvaluateConfig(StrictModel):
    """How the fine-tuned model is compared with the base model (`<run>/evaluate/`)."""

    batch_size: int = Field(8, ge=1)
    """Sequences per forward pass when computing losses and task scores."""
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
    tasks: list[str] = Field(default_factory=lambda: ["cloze", "mc"])
    """lm-eval tasks for both models: cloze, mc (from held-out data) or any with local data."""
    task_examples: int = Field(200, ge=1)
    """Examples per task at most (built tasks have this many; lm-eval's own are cut to it)."""
    cloze_min_words: int = Field(30, ge=2)
    """Shortest cloze passage, in words (whole sentences of a held-out document)."""
    cloze_max_words: int = Field(80, ge=2)
    """Longest cloze passage, in words."""
    mc_choices: int = Field(4, ge=2)
    """Answers per multiple-choice question: the right one and answers of other questions."""
    mc_answer_words: int = Field(24, ge=1)
    """Each choice is the first sentence of an answer, cut to this many words."""
    contamination: bool = True
    """Report per task the share of items whose n-grams occur in the pretraining documents
    (`<task>_contaminated_share`) and the scores on the clean items (`<task>_acc_clean`)."""
    contamination_ngram: int = Field(13, ge=3, le=64)
    """Words per n-gram of that check (as `decontaminate.ngram`)."""
    contamination_min_item_words: int = Field(8, ge=1)
    """A text shorter than the n-gram counts whole from this many words (as
    `decontaminate.min_item_words`)."""
    bootstrap_iters: int = Field(1000, ge=0)
    """Bootstrap resamples of lm-eval for standard errors without a closed form (perplexity)."""
    hf_datasets_cache: str | None = None
    """HF datasets cache holding lm-eval's own tasks' data; null = HF_DATASETS_CACHE's default."""
    champion: str | None = None
    """Also score this version (`models:/NAME@champion`) as `champion_<metric>`; null = no."""
    gate: GateConfig = Field(default_factory=GateConfig)
    """The pass/fail rule registration uses."""

    @model_validator(mode="after")
    def _check_cloze_words(self) -> EvaluateConfig:
        if self.cloze_min_words > self.cloze_max_words:
            raise ValueError("`evaluate.cloze_min_words` must not exceed `cloze_max_words`")
        return self
