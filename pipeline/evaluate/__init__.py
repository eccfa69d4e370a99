"""Evaluation of the fine-tuned model against its base: `run_evaluate(cfg, run_dir)`.

`run_evaluate` is imported lazily: `pipeline.config` needs `EvaluateConfig` without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from pipeline.evaluate.config import EvaluateConfig, GateConfig

__all__ = ["EvaluateConfig", "GateConfig", "run_evaluate"]


_LAZY = {"plan_evaluate": "pipeline.evaluate.plan", "run_evaluate": "pipeline.evaluate.run"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pipeline.evaluate' has no attribute {name!r}")
