"""The data flow: raw files -> ingest -> (clean -> dedup as they land) -> curated shards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

from flows.common import progress_reporter, retry_io_only, summary
from pipeline.config import PipelineConfig
from pipeline.ingest import run_ingest
from pipeline.report import render_markdown

DATA_STAGES = ("ingest",)


@task(name="ingest", retries=2, retry_delay_seconds=[5, 30], retry_condition_fn=retry_io_only)
def ingest_task(config: PipelineConfig, run_dir: str) -> dict[str, Any]:
    """Read the configured inputs into `<run_dir>/ingest/` document shards."""
    progress = progress_reporter("ingest")
    result = run_ingest(config.ingest, config.inputs, Path(run_dir) / "ingest", progress)
    get_run_logger().info("ingest: %s%s", result.counts, " (cached)" if result.skipped else "")
    return summary(result)


@flow(name="lmpipe-data", log_prints=True)
def data_flow(config: PipelineConfig, stages: list[str] | None = None) -> dict[str, Any]:
    """Ingest (then clean and dedup) the configured inputs into `config.run_dir`."""
    wanted = stages or list(DATA_STAGES)
    results: dict[str, Any] = {}
    if "ingest" in wanted:
        results["ingest"] = ingest_task(config, config.run_dir)
    create_markdown_artifact(render_markdown(Path(config.run_dir)), key="data-report")
    return results
