"""Supervised fine-tuning (full or LoRA) of the pretrained model: `run_finetune(cfg, run_dir)`.

Light on purpose: `template` (the chat template) is shipped with the registered model and must
import with torch and tokenizers only, and `pipeline.config` needs `FinetuneConfig` without
Lightning. `run_finetune` is imported lazily.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["run_finetune"]


_LAZY = {"plan_finetune": "pipeline.finetune.launch", "run_finetune": "pipeline.finetune.run"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pipeline.finetune' has no attribute {name!r}")
