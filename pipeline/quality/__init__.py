"""The learned quality stage: documents scored by a model of a reference set (`run_quality`).

`run_quality` is imported lazily: `pipeline.config` needs `QualityConfig` without the stage's
imports (scikit-learn, the process pool, MLflow).
"""

from __future__ import annotations

from typing import Any

from pipeline.quality.config import QualityConfig

__all__ = ["QualityConfig", "plan_quality", "run_quality"]


def __getattr__(name: str) -> Any:
    if name in ("plan_quality", "run_quality"):
        from pipeline.quality import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
