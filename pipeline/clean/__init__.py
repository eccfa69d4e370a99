"""Cleaning: ingested records to clean text (`run_clean`): extraction, Unicode repair, language
ID, quality filters and PII redaction."""

# The stage runs are imported lazily: `pipeline.config` needs only the config, and a training
# process must not import ftfy and resiliparse (the accelerator image has none; issue 35).
from __future__ import annotations

import importlib
from typing import Any

from pipeline.clean.config import CleanConfig

__all__ = ["CLEAN_SCHEMA", "CleanConfig", "plan_clean", "run_clean"]


def __getattr__(name: str) -> Any:
    if name in ("CLEAN_SCHEMA", "plan_clean", "run_clean"):
        return getattr(importlib.import_module("pipeline.clean.run"), name)
    raise AttributeError(f"module 'pipeline.clean' has no attribute {name!r}")
