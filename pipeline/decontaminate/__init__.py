"""Benchmark decontamination: no evaluation item in the training data (`run_decontaminate`).

`run_decontaminate` is imported lazily: `pipeline.config` needs `DecontaminateConfig` without
the stage's imports (the process pool among them).
"""

from __future__ import annotations

from typing import Any

from pipeline.decontaminate.config import DecontaminateConfig

__all__ = ["DecontaminateConfig", "plan_decontaminate", "run_decontaminate"]


def __getattr__(name: str) -> Any:
    if name in ("plan_decontaminate", "run_decontaminate"):
        from pipeline.decontaminate import run

        return getattr(run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
