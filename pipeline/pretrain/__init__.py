"""Pretraining with Lightning: `run_pretrain(cfg, tokenize_dir, output_dir)`.

`run_pretrain` is imported lazily: `pipeline.config` needs `PretrainConfig` without importing
torch and Lightning.
"""

from __future__ import annotations

import importlib
from typing import Any

from pipeline.pretrain.config import FSDPConfig, PretrainConfig, TrainingConfig

__all__ = ["FSDPConfig", "PretrainConfig", "TrainingConfig", "run_pretrain"]


_LAZY = {"plan_pretrain": "pipeline.pretrain.launch", "run_pretrain": "pipeline.pretrain.run"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pipeline.pretrain' has no attribute {name!r}")
