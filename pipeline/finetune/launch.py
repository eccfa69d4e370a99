"""Starting fine-tuning as its own process group, like pretraining (`pipeline.pretrain.launch`).

The Prefect task calls `launch_finetune`; it runs `python -m pipeline.finetune` in a new
session, streams its output to `on_line`, turns `lmpipe-progress` lines into progress calls
and kills the group on the time limit or a cancellation. Importing this module is cheap.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from pipeline.core import local_copy
from pipeline.core.layout import RunLayout
from pipeline.core.stage import (
    Plan,
    StageResult,
    fingerprint,
    read_manifest,
    upstream_fingerprint,
    write_json_atomic,
)
from pipeline.finetune.config import FinetuneConfig
from pipeline.pretrain.config import training_config_hash
from pipeline.pretrain.launch import (
    LAUNCH_CONFIG,
    launch_record,
    run_layout,
    run_training_process,
    training_command,
)
from pipeline.stages import StageName
from pipeline.tokenize.tokenizer import file_sha256

STAGE = "finetune"
REPO = Path(__file__).resolve().parents[2]


def resolve_data_path(data: str) -> Path:
    """`finetune.data` as given, else relative to the checkout (the bundled set's default)."""
    path = Path(data)
    if not path.is_file() and not path.is_absolute() and (REPO / path).is_file():
        path = REPO / path
    if not path.is_file():
        raise FileNotFoundError(f"`finetune.data`: no file at {data}")
    return path


def finetune_inputs(cfg: FinetuneConfig, run: RunLayout | str | Path) -> dict[str, Any]:
    """What the fine-tuned weights depend on: the pretrained weights, the data, the tokenizer."""
    run = RunLayout.of(run)
    pretrain = upstream_fingerprint(run.pretrain)
    tok = (read_manifest(run.tokenize) or {}).get("tokenizer") or {}
    return {
        StageName.PRETRAIN: pretrain,
        "data_sha256": file_sha256(resolve_data_path(cfg.data)),
        "tokenizer": tok.get("fingerprint"),
    }


def plan_finetune(
    cfg: FinetuneConfig, run: RunLayout | str | Path, output_dir: str | Path | None = None
) -> Plan:
    """The pretrained weights, the tokenizer and the instruction data (`finetune_inputs`)."""
    layout = RunLayout.of(run)
    inputs = finetune_inputs(cfg, layout)
    out_dir = Path(output_dir or layout.finetune)
    return Plan(STAGE, out_dir, fingerprint(inputs), training_config_hash(cfg), detail=inputs)


def launch_finetune(
    config: Any,
    run_dir: str | Path,
    on_line: Callable[[str], None] = print,
    progress: Callable[[int, int, dict[str, Any]], None] | None = None,
) -> StageResult:
    """Fine-tune `<run_dir>/pretrain` into `<run_dir>/finetune` in a separate process group.

    A run directory on a bucket trains on this node's copy (`pipeline/core/local_copy.py`)."""
    run = run_layout(run_dir)
    stage_dir = run.finetune
    if plan_finetune(config.finetune, run, stage_dir).done():
        return StageResult.from_dir(STAGE, stage_dir, skipped=True)  # no process, no torch
    local_copy.pull_pretrained(run.pretrain, run.tokenize)
    local_copy.pull_training_state(stage_dir)
    stage_dir.mkdir(parents=True, exist_ok=True)
    config_path = stage_dir / LAUNCH_CONFIG
    write_json_atomic(config_path, launch_record(config, STAGE))
    f = config.finetune
    # The launchers of pretraining: torchrun or srun start every rank of every node.
    cmd = training_command(
        f.launcher, f.launcher_args, config_path, run.run_dir, entry="pipeline.finetune"
    )
    limit = f.time_limit_minutes * 60
    run_training_process(cmd, stage_dir, on_line, progress, limit, "fine-tuning")
    return StageResult.from_dir(STAGE, stage_dir, skipped=False)
