"""Deduplication: exact and MinHash LSH near-duplicate removal into Arrow shards (`run_dedup`).

Input: `<run>/clean/` shards (at least `id` and `text`; every column is passed through).
Output: `<run>/dedup/`, the curated corpus, plus `rejected/` (reason `exact_duplicate` or
`near_duplicate`, and `duplicate_of`: the id of the kept document), `clusters/` (`id`,
`cluster_id`, `status`) and `index/` (signatures of the kept documents, for incremental runs).
"""

# The stage runs are imported lazily: `pipeline.config` needs only the config, and a training
# process must not import the stage's imports (the accelerator image has none; issue 35).
from __future__ import annotations

import importlib
from typing import Any

from pipeline.dedup.config import DedupConfig

__all__ = ["DedupConfig", "plan_dedup", "run_dedup"]


def __getattr__(name: str) -> Any:
    if name in ("plan_dedup", "run_dedup"):
        return getattr(importlib.import_module("pipeline.dedup.run"), name)
    raise AttributeError(f"module 'pipeline.dedup' has no attribute {name!r}")
