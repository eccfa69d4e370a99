"""Helpers of the training tests: small configs and run directories over the shared shards."""

from __future__ import annotations

import json
from pathlib import Path

from pipeline.config import PipelineConfig, load_config
from tests.helpers import QUIET

# A model that trains in seconds on 2 CPU cores; tests override what they exercise.
TINY = [
    "pretrain.model.block_size=64",
    "pretrain.model.n_layers=2",
    "pretrain.model.n_heads=4",
    "pretrain.model.d_model=64",
    "pretrain.micro_batch_size=4",
    "pretrain.warmup_steps=2",
    "pretrain.val_batches=2",
    *QUIET,
]


def tiny_config(*overrides: str) -> PipelineConfig:
    return load_config(None, [*TINY, *overrides])


def make_run_dir(root: Path, tokenize_dir: Path) -> Path:
    """A run directory whose `tokenize/` is the shared session shards."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "tokenize").symlink_to(tokenize_dir, target_is_directory=True)
    return root


def write_config(cfg: PipelineConfig, path: Path) -> Path:
    path.write_text(json.dumps(cfg.model_dump(mode="json")))
    return path
