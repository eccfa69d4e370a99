"""The training flow: pretrain on the token shards (finetune -> evaluate -> register follow).

Training runs as its own process group (`python -m pipeline.pretrain`, or under torchrun / srun),
so it can use many devices and is killed as a whole on the time limit or a cancellation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from flows.caching import cache_key_fn, run_stages
from flows.common import ends_cancelled, holds_run_dir, progress_reporter, summary
from flows.params import TRAINING_STAGES, TrainingStage, documented, wanted_stages
from flows.register import mlflow_run_link, register_task
from flows.report_html import publish_html
from pipeline.config import PipelineConfig
from pipeline.core.layout import RunLayout
from pipeline.core.stage import read_manifest
from pipeline.evaluate.report import tasks_markdown
from pipeline.finetune.launch import launch_finetune
from pipeline.io import mirror
from pipeline.pretrain.launch import launch_pretrain
from pipeline.refresh.snapshot import LATEST
from pipeline.stages import StageName, upstream


def _launch(stage: str, launcher: Any, config: PipelineConfig, run_dir: str) -> dict[str, Any]:
    """Run a training stage's own process group; its output lines go to the task's log."""
    logger = get_run_logger()
    # The run page shows progress as the `<stage>-progress` artifact and one log line per logged
    # step; a progress bar's redraws would be most of the log's lines.
    sections = {s: getattr(config, s) for s in TRAINING_STAGES if hasattr(config, s)}
    quiet = {
        s: section.model_copy(update={"progress_bar": False})
        for s, section in sections.items()
        if "progress_bar" in type(section).model_fields
    }
    config = config.model_copy(update=quiet)
    result = launcher(config, run_dir, logger.info, progress_reporter(stage))
    logger.info("%s: %s%s", stage, result.counts, " (cached)" if result.skipped else "")
    report = pretrain_markdown(RunLayout(run_dir).stage(stage))
    create_markdown_artifact(report, key=f"{stage}-report")
    return summary(result)


@task(name=StageName.PRETRAIN, retries=0, cache_key_fn=cache_key_fn)
@ends_cancelled
def pretrain_task(config: PipelineConfig, run_dir: str) -> dict[str, Any]:
    """Pretrain on `<run_dir>/tokenize/` into `<run_dir>/pretrain/`; its output goes to the log."""
    return _launch(StageName.PRETRAIN, launch_pretrain, config, run_dir)


@task(name=StageName.FINETUNE, retries=0, cache_key_fn=cache_key_fn)
@ends_cancelled
def finetune_task(config: PipelineConfig, run_dir: str) -> dict[str, Any]:
    """Fine-tune `<run_dir>/pretrain/` on `finetune.data` into `<run_dir>/finetune/`."""
    return _launch(StageName.FINETUNE, launch_finetune, config, run_dir)


@task(name=StageName.EVALUATE, retries=0, cache_key_fn=cache_key_fn)
@ends_cancelled
def evaluate_task(config: PipelineConfig, run_dir: str) -> dict[str, Any]:
    """Score base and fine-tuned model, answer the prompts, decide the gate (`<run>/evaluate`)."""
    from pipeline.evaluate.run import run_evaluate  # torch only when evaluating

    logger = get_run_logger()
    result = run_evaluate(config.evaluate, run_dir)
    gate = result.manifest.get("gate", {})
    verdict = "passed" if gate.get("passed") else "FAILED"
    logger.info("evaluate: gate %s: %s", verdict, gate.get("rule"))
    report = pretrain_markdown(RunLayout(run_dir).evaluate)
    table = tasks_markdown(result.manifest.get("metrics", {}))
    if table:
        logger.info("evaluate: task scores\n%s", table)
        report += "\n\n## Tasks (lm-evaluation-harness, ± standard error)\n\n" + table
    create_markdown_artifact(report, key="evaluate-report")
    return {**summary(result), "gate": gate}


def pretrain_markdown(stage_dir: Path) -> str:
    """The run's numbers as a small markdown table (Prefect UI artifact)."""
    m = read_manifest(stage_dir) or {}
    rows = {**m.get("counts", {}), **m.get("metrics", {})}
    lines = [f"# {stage_dir.name}: `{stage_dir}`", "", "| metric | value |", "|---|---:|"]
    lines += [
        f"| {k} | {v:,.4g} |" if isinstance(v, float) else f"| {k} | {v:,} |"
        for k, v in rows.items()
    ]
    if m.get("mlflow"):
        run_id, uri = m["mlflow"]["run_id"], m["mlflow"]["tracking_uri"]
        link = mlflow_run_link(uri, run_id)
        shown = f"[MLflow run `{run_id}`]({link})" if link else f"MLflow run `{run_id}`"
        lines += ["", f"{shown} (loss curves, metrics) in `{uri}`"]
    return "\n".join(lines)


def no_tokens_yet(config: PipelineConfig, stages: list[str] | None) -> str | None:
    """Why the training flow has nothing to do, in one line: `run_dir` is the corpus refresh's
    `latest` snapshot (train-on-demand's default) and no refresh has made one yet. Any other run
    directory without its first stage's upstream is an error the stage itself raises."""
    first = wanted_stages(stages, TRAINING_STAGES)
    reads = upstream(first[0], config) if first else None
    if reads is None or mirror.is_url(config.run_dir):
        return None  # a bucket's run: the task checks it on its mirror
    where = RunLayout(config.run_dir).stage(reads)
    if read_manifest(where) is not None:
        return None
    refresh_latest = Path(config.refresh.root) / LATEST
    if Path(config.run_dir).absolute() != refresh_latest.absolute():
        return None  # another run directory: the first stage fails, naming what to run first
    return (
        f"no corpus snapshot to train on yet: {refresh_latest} does not exist; run the "
        "corpus-refresh deployment first (a completed refresh starts this training itself), "
        "or set `run_dir` to a run directory with a finished tokenize stage"
    )


@flow(name="lmpipe-train", log_prints=True)
@documented
@holds_run_dir(nothing_to_do=no_tokens_yet)
def training_flow(
    config: PipelineConfig | None = None,
    stages: list[TrainingStage] | None = None,
    config_path: str | None = None,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """Token shards to a registered model: pretrain -> finetune -> evaluate -> register.

    Unchanged stages complete from cache.
    """
    tasks = (pretrain_task, finetune_task, evaluate_task, register_task)
    results = run_stages(tasks, config, stages, TRAINING_STAGES)
    publish_html(config.run_dir)  # the report page again, now with the loss and the scores
    return results
