"""The scaling flow: a ladder of pretraining runs (one task each) and the scaling-law fit.

Every point is a normal pretraining run in its own process group (`launch_pretrain`) into
`<run>/scaling/<point>/pretrain/`, nested in MLflow under one parent run; a finished point is
skipped by its manifest. Points run `scaling.max_parallel` at a time (1 on a CPU).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from flows.common import holds_run_dir, progress_reporter, summary
from flows.params import documented
from pipeline.config import PipelineConfig
from pipeline.core.layout import RunLayout
from pipeline.core.stage import upstream_fingerprint
from pipeline.pretrain.launch import TrainingFailed, TrainingTimeout, launch_pretrain
from pipeline.scaling.ladder import SCALING_DIR, LadderPoint, plan_ladder, point_config, point_dir
from pipeline.scaling.run import REPORT_FILE, run_scaling_fit


@task(name="scaling-parent-run")
def parent_run_task(config: PipelineConfig, run_dir: str) -> str:
    """The sweep's MLflow parent run ('' when `pretrain.mlflow` is off)."""
    if not config.pretrain.mlflow:
        return ""
    from pipeline.scaling.tracking import parent_run

    params = {"sizes": len(config.scaling.sizes), "ratios": config.scaling.tokens_per_param}
    name = f"scaling-{Path(run_dir).name}"
    return parent_run(Path(run_dir) / SCALING_DIR, config.scaling.mlflow_experiment, name, params)


@task(name="scaling-point", task_run_name="scaling-{point.name}")
def point_task(config: PipelineConfig, run_dir: str, point: LadderPoint, parent: str) -> dict:
    """Pretrain one ladder point; a failed run is reported (and left out of the fit), not raised."""
    logger = get_run_logger()
    cfg = point_config(config, point, parent)
    stage_dir = point_dir(run_dir, point)
    try:
        result = launch_pretrain(
            cfg, run_dir, logger.info, progress_reporter(point.name), stage_dir
        )
    except (TrainingFailed, TrainingTimeout) as err:
        logger.error("scaling point %s failed: %s", point.name, err)
        return {"stage": point.name, "failed": str(err)[-2000:]}
    logger.info("%s: %s%s", point.name, result.counts, " (cached)" if result.skipped else "")
    return summary(result)


@task(name="scaling-fit")
def fit_task(config: PipelineConfig, run_dir: str, parent: str) -> dict[str, Any]:
    """Fit the laws, log plot and fit to the parent run, publish the markdown report."""
    result = run_scaling_fit(config, run_dir, parent)
    report = (result.output_dir / REPORT_FILE).read_text()
    create_markdown_artifact(report, key="scaling-report", description="scaling-law fit")
    get_run_logger().info("scaling fit: %s", result.manifest.get("metrics"))
    return summary(result)


@flow(name="lmpipe-scaling", log_prints=True)
@documented
@holds_run_dir
def scaling_flow(
    config: PipelineConfig | None = None,
    config_path: str | None = None,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """Train the `scaling` ladder on `<run_dir>/tokenize/`, then fit loss vs size and compute."""
    run_dir = str(Path(config.run_dir).resolve())
    upstream_fingerprint(RunLayout(run_dir).tokenize)  # no tokens: a clear error before any run
    parent = parent_run_task(config, run_dir)
    plan, points = plan_ladder(config), {}
    step = config.scaling.max_parallel
    for start in range(0, len(plan), step):
        batch = plan[start : start + step]
        futures = [point_task.submit(config, run_dir, p, parent) for p in batch]
        points |= {p.name: f.result() for p, f in zip(batch, futures, strict=True)}
    return {"points": points, "fit": fit_task(config, run_dir, parent)}
