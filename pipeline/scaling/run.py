"""`run_scaling_fit`: the finished ladder points of `<run>/scaling/` -> fits, plot, manifest.

The points themselves are ordinary pretraining runs (`pipeline.pretrain.launch.launch_pretrain`
with `stage_dir=<run>/scaling/<point>/pretrain`), each skipped on rerun by its own manifest;
the flow starts them. This step is cheap and always recomputes the fits from their manifests.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from pipeline.config import PipelineConfig
from pipeline.core.layout import RunLayout
from pipeline.core.stage import (
    StageResult,
    fingerprint,
    upstream_fingerprint,
    write_json_atomic,
    write_manifest,
)
from pipeline.pretrain.config import training_config_hash
from pipeline.scaling.analysis import analyse, collect_points
from pipeline.scaling.ladder import (
    SCALING_DIR,
    non_embedding_params,
    plan_ladder,
    target_model,
)
from pipeline.scaling.report import plot_scaling, render_markdown

STAGE = "scaling"
FIT_FILE = "fit.json"
REPORT_FILE = "report.md"


def target_info(path: str) -> dict[str, Any] | None:
    """Name, size and planned tokens of the extrapolation target (None: no such file)."""
    found = target_model(path)
    if found is None:
        return None
    model, tokens = found
    shape = {k: getattr(model, k) for k in ("d_model", "n_layers", "n_heads", "block_size")}
    n = non_embedding_params(model)
    return {"name": Path(path).stem, "path": str(path), "non_embedding_params": n, **shape} | {
        "tokens": tokens
    }


def sweep_hash(config: PipelineConfig) -> str:
    """What decides the points' results: the ladder and the base training config."""
    scaling = config.scaling.model_dump(mode="json", exclude={"max_parallel"})
    return fingerprint([scaling, training_config_hash(config.pretrain)])


def run_scaling_fit(
    config: PipelineConfig, run_dir: str | Path, parent_run_id: str = ""
) -> StageResult:
    """Fit the laws to the finished points; write `fit.json`, `scaling.png`, `report.md`."""
    t0, run_dir = time.time(), Path(run_dir)
    out_dir = run_dir / SCALING_DIR
    out_dir.mkdir(parents=True, exist_ok=True)
    plan = plan_ladder(config)
    rows, reasons = collect_points(run_dir, plan)
    result = analyse(
        rows,
        config.scaling.holdout,
        target_info(config.scaling.target_config),
        config.scaling.bootstrap_samples,
    )
    result["reasons"] = dict(reasons)
    write_json_atomic(out_dir / FIT_FILE, result)
    plot = plot_scaling(result, out_dir) if rows else None
    (out_dir / REPORT_FILE).write_text(render_markdown(result, run_dir))
    if parent_run_id:
        from pipeline.scaling.tracking import log_fit

        log_fit(parent_run_id, fit_metrics(result), [p for p in (plot, out_dir / FIT_FILE) if p])
    counts = {"planned": len(plan), "fitted": len(rows), "rejected": sum(reasons.values())}
    write_manifest(
        out_dir,
        stage=STAGE,
        inputs_fingerprint=upstream_fingerprint(RunLayout(run_dir).tokenize),
        config_hash=sweep_hash(config),
        counts=counts,
        reasons=dict(reasons),
        metrics=fit_metrics(result),
        mlflow={"parent_run_id": parent_run_id} if parent_run_id else {},
        wall_seconds=round(time.time() - t0, 3),
    )
    return StageResult(STAGE, out_dir, counts, dict(reasons))


def fit_metrics(result: dict[str, Any]) -> dict[str, float]:
    """The headline numbers (MLflow metrics of the parent run, manifest `metrics`)."""
    out: dict[str, float] = {}
    for prefix, fit in (("n", result["loss_vs_params"]), ("c", result["loss_vs_compute"])):
        for key in ("E", "A", "alpha", "rmse") if fit else ():
            out[f"{prefix}_{key.lower()}"] = fit[key]
        for key in ("E", "A", "alpha") if fit else ():
            out[f"{prefix}_{key.lower()}_stderr"] = fit[f"{key}_stderr"]
    hold = result["holdout"]
    if hold:
        out["holdout_predicted"] = hold["predicted"][-1]
        out["holdout_actual"] = hold["actual"][-1]
        out["holdout_relative_error"] = hold["relative_error"][-1]
    best = result.get("optimal_tokens_per_param")
    if best:
        out["optimal_tokens_per_param"] = best["ratio"]
    target = result.get("target") or {}
    if "loss_at_ladder_ratio" in target:
        out["target_loss"] = target["loss_at_ladder_ratio"]
        out["target_loss_stderr"] = target["loss_at_ladder_ratio_stderr"]
    return {k: float(v) for k, v in out.items() if v is not None and math.isfinite(float(v))}
