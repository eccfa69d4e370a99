"""Supervised fine-tuning (full or LoRA) of the pretrained model: `run_finetune(cfg, run_dir)`.

Light on purpose: `template` (the chat template) is shipped with the registered model and must
import with torch and tokenizers only, and `pipeline.config` needs `FinetuneConfig` without
Lightning. `run_finetune` is imported lazily.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run_finetune"]


def __getattr__(name: str) -> Any:
    if name == "plan_finetune":
        from pipeline.finetune.launch import plan_finetune

        return plan_finetune
    if name == "run_finetune":
        from pipeline.finetune.run import run_finetune

        return run_finetune
    raise AttributeError(f"module 'pipeline.finetune' has no attribute {name!r}")
