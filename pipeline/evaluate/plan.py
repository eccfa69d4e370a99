"""The evaluate stage's plan: what it reads and its settings, without importing torch."""

from __future__ import annotations

from pathlib import Path

from pipeline.core.base_config import config_hash
from pipeline.core.layout import RunLayout
from pipeline.core.stage import Plan, fingerprint, upstream_fingerprint
from pipeline.evaluate.config import EvaluateConfig
from pipeline.stages import StageName

STAGE = "evaluate"


def evaluate_inputs(run: RunLayout) -> dict[str, str]:
    read = (StageName.TOKENIZE, StageName.PRETRAIN, StageName.FINETUNE)
    return {s.value: upstream_fingerprint(run.stage(s)) for s in read}


def plan_evaluate(
    cfg: EvaluateConfig, run: RunLayout | str | Path, output_dir: str | Path | None = None
) -> Plan:
    layout = RunLayout.of(run)
    inputs_fp = fingerprint(evaluate_inputs(layout))
    return Plan(STAGE, Path(output_dir or layout.evaluate), inputs_fp, config_hash(cfg))
