"""The decoder-only transformer (Llama layout) trained by `pipeline.pretrain`.

Imports are lazy: `pipeline.config` needs `ModelConfig` without paying for importing torch.
"""

from __future__ import annotations

import importlib
from typing import Any

from pipeline.model.config import ModelConfig

_LAZY = {
    "DecoderLM": "pipeline.model.transformer",
    "DecoderLayer": "pipeline.model.transformer",
    "KVCache": "pipeline.model.attention",
    "document_positions": "pipeline.model.attention",
    "export_state_dict": "pipeline.model.io",
    "load_model": "pipeline.model.io",
}

__all__ = ["ModelConfig", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'pipeline.model' has no attribute {name!r}")
