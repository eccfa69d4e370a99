"""The end-to-end flow: raw web text to a registered model, as two subflows (data, training)."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.common import holds_run_dir
from flows.data import data_flow
from flows.params import (
    DATA_STAGES,
    TRAINING_STAGES,
    Stage,
    documented,
    wanted_stages,
)
from flows.report_html import publish_html
from flows.train import training_flow
from pipeline.config import PipelineConfig
from pipeline.stages import is_active


@flow(name="lmpipe-pipeline", log_prints=True)
@documented
@holds_run_dir
def pipeline_flow(
    config: PipelineConfig | None = None,
    stages: list[Stage] | None = None,
    config_path: str | None = None,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """Raw web text to a registered model: the data flow, then the training flow (subflows).

    A rerun after a failure completes the finished stages from cache and picks up at the first
    unfinished one.
    """
    wanted = wanted_stages(stages, (*DATA_STAGES, *TRAINING_STAGES))
    if stages is None:  # all stages: those this config turns on (a named one that is off: error)
        wanted = [s for s in wanted if is_active(s, config)]
    results: dict[str, Any] = {}
    data_stages = [s for s in DATA_STAGES if s in wanted]
    if data_stages:
        results.update(data_flow(config, stages=data_stages))
    train_stages = [s for s in TRAINING_STAGES if s in wanted]
    if train_stages:
        results.update(training_flow(config, stages=train_stages))
    publish_html(config.run_dir, write=False)  # the page the last subflow wrote, linked here too
    return results
