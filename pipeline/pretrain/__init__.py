"""Pretraining with Lightning: `run_pretrain(cfg, tokenize_dir, output_dir)`.

`run_pretrain` is imported lazily: `pipeline.config` needs `PretrainConfig` without importing
torch and Lightning.
"""

from __future__ import annotations

from typing import Any

from pipeline.pretrain.config import FSDPConfig, PretrainConfig, TrainingConfig

__all__ = ["FSDPConfig", "PretrainConfig", "TrainingConfig", "run_pretrain"]


def __getattr__(name: str) -> Any:
    if name == "plan_pretrain":
        from pipeline.pretrain.launch import plan_pretrain

        return plan_pretrain
    if name == "run_pretrain":
        from pipeline.pretrain.run import run_pretrain

        return run_pretrain
    raise AttributeError(f"module 'pipeline.pretrain' has no attribute {name!r}")
