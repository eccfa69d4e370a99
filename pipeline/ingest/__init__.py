"""Ingestion: WARC/WET/JSONL/Parquet files to Arrow document shards (`run_ingest`)."""

# The stage runs are imported lazily: `pipeline.config` needs only the config, and a training
# process must not import fastwarc and resiliparse (the accelerator image has none; issue 35).
from __future__ import annotations

import importlib
from typing import Any

from pipeline.ingest.config import IngestConfig

__all__ = ["IngestConfig", "plan_ingest", "run_ingest"]


def __getattr__(name: str) -> Any:
    if name in ("plan_ingest", "run_ingest"):
        return getattr(importlib.import_module("pipeline.ingest.run"), name)
    raise AttributeError(f"module 'pipeline.ingest' has no attribute {name!r}")
