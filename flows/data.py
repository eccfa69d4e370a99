"""The data flow: raw files through the data stages of the stage table, with cached stages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.events import emit_event

from flows.caching import cache_key_fn, run_stages
from flows.common import (
    ends_cancelled,
    holds_run_dir,
    progress_reporter,
    retry_io_only,
    summary,
)
from flows.params import DATA_STAGES, DataStage, documented
from flows.report import example_rows, reason_rows, render_markdown
from flows.report_html import publish_html
from pipeline.config import PipelineConfig
from pipeline.core.card import write_card
from pipeline.core.layout import RunLayout
from pipeline.core.stage import Plan
from pipeline.stages import STAGES, TOKENS, Stage, call_args

# Every data stage: retried with backoff on transient I/O errors, cached on its inputs and config.
DATA_TASK = {
    "retries": 2,
    "retry_delay_seconds": [5, 30],
    "retry_condition_fn": retry_io_only,
    "cache_key_fn": cache_key_fn,
}


# Emitted when a data flow run has built a whole corpus; `train-on-demand` is triggered by it.
CORPUS_READY = "lmpipe.corpus.ready"


def announce_corpus(config: PipelineConfig, snapshot: dict[str, Any] | None = None) -> None:
    """Emit `lmpipe.corpus.ready` carrying the run's resolved config, so the triggered training
    run trains on exactly this corpus (run directory and settings), whatever started this run.
    A refresh adds its `snapshot` record (name, counts, fingerprint).

    A custom event rather than the flow run's own Completed event: prefect 3.8.8's scheduler
    inserts scheduled runs without a Scheduled event, and the trigger service holds the later
    state events of such a run ~15 minutes waiting for that missing predecessor (`follows`).
    Prefect adds the flow run, flow and deployment as related resources.
    """
    run_dir = RunLayout(config.run_dir).location()  # a URL stays a URL
    run_dir = run_dir if "://" in run_dir else str(Path(run_dir).resolve())
    resource = {"prefect.resource.id": f"lmpipe.run-dir.{run_dir}"}
    payload: dict[str, Any] = {"config": config.model_dump(mode="json")}
    if snapshot is not None:
        payload["snapshot"] = snapshot
    emit_event(
        event=CORPUS_READY,
        resource={**resource, "prefect.resource.name": str(config.run_dir)},
        payload=payload,
    )


def _run(
    stage: str, run_stage_fn: Any, config: PipelineConfig, *args: Any, planned: Plan | None
) -> dict[str, Any]:
    """Call a `pipeline.*` stage with a progress artifact on the config's parallel backend (local
    processes or Ray), from `planned` if given; log and return its summary."""
    progress = progress_reporter(stage)
    result = run_stage_fn(*args, progress, parallel=config.parallel, planned=planned)
    get_run_logger().info("%s: %s%s", stage, result.counts, " (cached)" if result.skipped else "")
    return summary(result)


def _stage_task(stage: Stage) -> Any:
    """The Prefect task of a data stage: `run_<stage>` on its section of the config, reading the
    run's inputs (the first stage) or its upstream stage's directory; `planned`: the stage's plan
    if the caller has it (`flows.caching.run_stage`)."""

    @task(name=stage.name, description=stage.help, **DATA_TASK)
    @ends_cancelled
    def stage_task(
        config: PipelineConfig, run_dir: str, planned: Plan | None = None
    ) -> dict[str, Any]:
        args = call_args(stage.name, config, run_dir)
        return _run(stage.name, stage.runner(), config, *args, planned=planned)

    return stage_task


# One task per data stage of the table, in pipeline order.
DATA_TASKS = tuple(_stage_task(s) for s in STAGES if s.kind == "data")


@flow(name="lmpipe-data", log_prints=True)
@documented
@holds_run_dir
def data_flow(
    config: PipelineConfig | None = None,
    stages: list[DataStage] | None = None,
    config_path: str | None = None,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """Raw inputs to token shards through the data stages, in `config.run_dir`.

    Unchanged stages complete from cache.
    """
    results = build_corpus(config, stages)
    publish_html(config.run_dir)  # the whole report as one page, linked from this run
    if TOKENS in results:
        announce_corpus(config)
    return results


def build_corpus(config: PipelineConfig, stages: list[str] | None = None) -> dict[str, Any]:
    """The data stages' tasks (in a flow run), then the funnel and rejection artifacts."""
    results = run_stages(DATA_TASKS, config, stages, DATA_STAGES)
    run = RunLayout(config.run_dir).run_dir  # a bucket's run: its mirror path
    create_markdown_artifact(render_markdown(run), key="data-report", description="data funnel")
    rows = reason_rows(run)
    if rows:
        create_table_artifact(rows, key="data-rejections", description="rejections per reason")
    if examples := example_rows(run):
        create_table_artifact(
            examples, key="data-examples", description="sampled documents per drop reason"
        )
    if TOKENS in results and (card := write_card(run)) is not None:
        create_markdown_artifact(card.read_text(), key="corpus-card", description="corpus card")
    return results
