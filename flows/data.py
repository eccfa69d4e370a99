"""The data flow: raw files -> ingest -> clean -> dedup -> tokenize, with cached stages."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.events import emit_event

from flows.caching import cache_key_fn, run_stages
from flows.common import holds_run_dir, progress_reporter, retry_io_only, summary
from flows.params import DATA_STAGES, DataStage, documented
from pipeline.clean import run_clean
from pipeline.config import PipelineConfig
from pipeline.dedup import run_dedup
from pipeline.ingest import run_ingest
from pipeline.layout import RunLayout
from pipeline.report import reason_rows, render_markdown
from pipeline.tokens import run_tokenize

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


def _run(stage: str, run_stage_fn: Any, config: PipelineConfig, *args: Any) -> dict[str, Any]:
    """Call a `pipeline.*` stage with a progress artifact on the config's parallel backend (local
    processes or Ray); log and return its summary."""
    result = run_stage_fn(*args, progress_reporter(stage), parallel=config.parallel)
    get_run_logger().info("%s: %s%s", stage, result.counts, " (cached)" if result.skipped else "")
    return summary(result)


@task(name="ingest", **DATA_TASK)
def ingest_task(config: PipelineConfig, run_dir: str) -> dict[str, Any]:
    """Read the configured inputs into `<run_dir>/ingest/` document shards."""
    return _run(
        "ingest", run_ingest, config, config.ingest, config.inputs, RunLayout(run_dir).ingest
    )


@task(name="clean", **DATA_TASK)
def clean_task(config: PipelineConfig, run_dir: str) -> dict[str, Any]:
    """Clean `<run_dir>/ingest/` records into text documents in `<run_dir>/clean/`."""
    run = RunLayout(run_dir)
    return _run("clean", run_clean, config, config.clean, run.ingest, run.clean)


@task(name="dedup", **DATA_TASK)
def dedup_task(config: PipelineConfig, run_dir: str) -> dict[str, Any]:
    """Deduplicate `<run_dir>/clean/` into the curated corpus `<run_dir>/dedup/`."""
    run = RunLayout(run_dir)
    return _run("dedup", run_dedup, config, config.dedup, run.clean, run.dedup)


@task(name="tokenize", **DATA_TASK)
def tokenize_task(config: PipelineConfig, run_dir: str) -> dict[str, Any]:
    """Train the tokenizer on `<run_dir>/dedup/` and write token shards to `<run_dir>/tokenize/`."""
    run = RunLayout(run_dir)
    return _run("tokenize", run_tokenize, config, config.tokenize, run.dedup, run.tokenize)


@flow(name="lmpipe-data", log_prints=True)
@documented
@holds_run_dir
def data_flow(
    config: PipelineConfig | None = None,
    stages: list[DataStage] | None = None,
    config_path: str | None = None,
    overrides: list[str] | None = None,
) -> dict[str, Any]:
    """Raw inputs to token shards: ingest -> clean -> dedup -> tokenize, in `config.run_dir`.

    Unchanged stages complete from cache.
    """
    results = build_corpus(config, stages)
    if "tokenize" in results:
        announce_corpus(config)
    return results


def build_corpus(config: PipelineConfig, stages: list[str] | None = None) -> dict[str, Any]:
    """The data stages' tasks (in a flow run), then the funnel and rejection artifacts."""
    tasks = (ingest_task, clean_task, dedup_task, tokenize_task)
    results = run_stages(tasks, config, stages, DATA_STAGES)
    run = RunLayout(config.run_dir).run_dir  # a bucket's run: its mirror path
    create_markdown_artifact(render_markdown(run), key="data-report", description="data funnel")
    rows = reason_rows(run)
    if rows:
        create_table_artifact(rows, key="data-rejections", description="rejections per reason")
    return results
