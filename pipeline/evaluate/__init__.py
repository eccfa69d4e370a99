"""Evaluation of the fine-tuned model against its base: `run_evaluate(cfg, run_dir)`.

`run_evaluate` is imported lazily: `pipeline.config` needs `EvaluateConfig` without torch.
"""

from __future__ import annotations

from typing import Any

from pipeline.evaluate.config import EvaluateConfig, GateConfig

__all__ = ["EvaluateConfig", "GateConfig", "run_evaluate"]


def __getattr__(name: str) -> Any:
    if name == "plan_evaluate":
        from pipeline.evaluate.plan import plan_evaluate

        return plan_evaluate
    if name == "run_evaluate":
        from pipeline.evaluate.run import run_evaluate

        return run_evaluate
    raise AttributeError(f"module 'pipeline.evaluate' has no attribute {name!r}")
