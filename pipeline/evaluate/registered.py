"""`evaluate_model`: lm-eval task scores of any model, e.g. a registered version.

`lmpipe evaluate --model models:/lmpipe-demo@champion --tasks cloze mc` scores a registered
version (or a run's `pretrain/` / `finetune/` directory) on tasks: `cloze` and `mc` are built
from the configured run's held-out data (as the evaluate stage builds them), any other name is
an lm-eval task whose data is local. The scores go to
`<run>/evaluate/models/<model>/scores.json` and are returned.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from pipeline.core.layout import RunLayout
from pipeline.core.stage import write_json_atomic
from pipeline.evaluate.config import EvaluateConfig
from pipeline.evaluate.task_scores import go_offline, task_scores
from pipeline.evaluate.tasks import LOCAL_TASKS, build_tasks

MODELS_DIR = "models"
SCORES = "scores.json"


def model_slug(model: str) -> str:
    """A directory name for a model URI or path (`models:/a@champion` -> `models_a_champion`)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", model).strip("_") or "model"


def evaluate_model(
    cfg: EvaluateConfig, run_dir: str | Path, model: str, tasks: list[str] | None = None
) -> dict[str, Any]:
    """Score `model` on `tasks` (default `cfg.tasks`); the record written to `scores.json`."""
    tasks = list(tasks or cfg.tasks)
    if not tasks:
        raise ValueError("`--tasks`: name at least one task (e.g. cloze mc)")
    out = RunLayout(run_dir).evaluate / MODELS_DIR / model_slug(model)
    local = [t for t in tasks if t in LOCAL_TASKS]
    built = build_tasks(Path(run_dir), out / "tasks", local, cfg) if local else {}
    go_offline(cfg.hf_datasets_cache)
    from pipeline.evaluate.harness import LmpipeLM

    lm = LmpipeLM(pretrained=model, batch_size=cfg.batch_size)
    metrics = task_scores(
        lm,
        tasks,
        out / "tasks",
        limit=cfg.task_examples,
        bootstrap_iters=cfg.bootstrap_iters,
        seed=cfg.seed,
    )
    record = {
        "model": model,
        "run_dir": str(Path(run_dir).resolve()),
        "tasks": {t: built.get(t, cfg.task_examples) for t in tasks},
        "metrics": metrics,
    }
    write_json_atomic(out / SCORES, record)
    return record
