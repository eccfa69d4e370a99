"""The register task: the last step of the training flow (MLflow registry, aliases, links)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from prefect import get_run_logger, task
from prefect.artifacts import create_link_artifact

from flows.caching import cache_key_fn
from flows.common import ends_cancelled, retry_when, summary
from pipeline.config import PipelineConfig, config_hash
from pipeline.core.stage import read_manifest
from pipeline.register.register import is_transient, run_register
from pipeline.stages import StageName

MLFLOW_UI = "http://127.0.0.1:5000"  # `mlflow ui` default, for a local sqlite store


# Registration retries only when MLflow's server, database or network failed.
retry_mlflow_io = retry_when(is_transient)


@task(
    name=StageName.REGISTER,
    retries=3,
    retry_delay_seconds=[5, 15, 45],
    retry_condition_fn=retry_mlflow_io,
    cache_key_fn=cache_key_fn,
)
@ends_cancelled
def register_task(config: PipelineConfig, run_dir: str) -> dict[str, Any]:
    """Register `<run_dir>`'s final model; link the MLflow run and version in the Prefect UI."""
    logger = get_run_logger()
    chash = config_hash(config)  # the whole pipeline config, a lineage tag of the version
    result = run_register(config.registry, run_dir, pipeline_config_hash=chash)
    m = read_manifest(result.output_dir) or {}
    logger.info(
        "register: %s v%s aliases %s (%s)%s",
        m.get("model_name"),
        m.get("version"),
        m.get("aliases"),
        m.get("promotion_reason"),
        " (already registered)" if result.skipped else "",
    )
    for key, link, text in mlflow_links(m):
        create_link_artifact(link=link, link_text=text, key=key)
    return summary(result)


def mlflow_ui(tracking_uri: str) -> str:
    """Where a person sees this tracking store: the server itself, or `make ui-mlflow`."""
    uri = tracking_uri or ""
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else MLFLOW_UI


def mlflow_run_link(tracking_uri: str, run_id: str) -> str | None:
    """The MLflow UI page of a training run (its loss curves), or None if the run is gone."""
    from mlflow import MlflowClient

    try:
        experiment = MlflowClient(tracking_uri).get_run(run_id).info.experiment_id
    except Exception:  # a deleted run or an unreachable server: the report goes on without it
        return None
    return f"{mlflow_ui(tracking_uri)}/#/experiments/{experiment}/runs/{run_id}"


def mlflow_links(m: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(artifact key, URL, text) of the MLflow run and of the registered version."""
    ui = mlflow_ui(m.get("tracking_uri", ""))
    name, version = m.get("model_name", ""), m.get("version", "")
    run = f"{ui}/#/experiments/{m.get('experiment_id')}/runs/{m.get('run_id')}"
    model = f"{ui}/#/models/{quote(name)}/versions/{version}"
    return [
        ("mlflow-register-run", run, f"MLflow run {m.get('run_id')}"),
        ("registered-model-version", model, f"{name} v{version} {m.get('aliases')}"),
    ]
