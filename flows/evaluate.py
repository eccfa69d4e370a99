"""`lmpipe evaluate --model URI --tasks ...`: a registered version's task scores, as a flow run."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from pipeline.config import PipelineConfig
from pipeline.evaluate.report import tasks_markdown


@flow(name="lmpipe-evaluate-model", log_prints=True)
def evaluate_model_flow(
    config: PipelineConfig, model: str, tasks: list[str] | None = None
) -> dict[str, Any]:
    """Score `model` (`models:/NAME@ALIAS`, `models:/NAME/VERSION` or a stage directory) on
    lm-eval tasks; `cloze` and `mc` are built from `config.run_dir`'s held-out data.

    Args:
        config: The pipeline config: its `evaluate` section and the `run_dir` whose held-out
            data the local tasks are built from.
        model: The model to score: `models:/NAME@ALIAS`, `models:/NAME/VERSION` or a finetune
            or pretrain stage directory.
        tasks: lm-eval task names (default: the config's `evaluate.tasks`).
    """
    from pipeline.evaluate.registered import evaluate_model  # torch and lm_eval only here

    record = evaluate_model(config.evaluate, config.run_dir, model, tasks)
    table = tasks_markdown(record["metrics"])
    get_run_logger().info("%s:\n%s", model, table)
    create_markdown_artifact(f"# Task scores of `{model}`\n\n{table}", key="evaluate-model")
    return record
