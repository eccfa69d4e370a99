"""The model registry: MLflow pyfunc packaging, registration with lineage, aliases, HF export.

Light on purpose: this package ships inside every registered model (`code_paths`), and the
serving process imports it without the rest of the pipeline's dependencies.
"""

from typing import Any


def __getattr__(name: str) -> Any:
    # `run_register` (the stage table's runner) without importing MLflow with the package: the
    # serving process imports this package too.
    if name in ("plan_register", "run_register"):
        from pipeline.register import register

        return getattr(register, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
