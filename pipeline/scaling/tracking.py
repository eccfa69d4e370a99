"""The sweep's MLflow parent run: created once per run directory, reused on reruns.

Each ladder point's training run names it in the tag `mlflow.parentRunId` (set by the point's
`pretrain.mlflow_parent_run_id`), so the MLflow UI shows the points nested under the sweep.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline.core.stage import write_json_atomic
from pipeline.io.tracking_store import default_uri, ensure_experiment, ensure_store

PARENT_FILE = "mlflow_parent.json"


def tracking_uri() -> str:
    """The same store pretraining logs to (MLFLOW_TRACKING_URI, else ./mlflow.db)."""
    return default_uri()


def _client():
    from mlflow import MlflowClient

    return MlflowClient(ensure_store(tracking_uri()))


def parent_run(scaling_dir: Path, experiment: str, run_name: str, params: dict[str, Any]) -> str:
    """The parent run's id: the one recorded in `scaling_dir`, else a new run."""
    from mlflow.exceptions import MlflowException

    client, saved = _client(), Path(scaling_dir) / PARENT_FILE
    if saved.is_file():
        run_id = json.loads(saved.read_text())["run_id"]
        try:
            client.get_run(run_id)
            return run_id
        except MlflowException:
            pass  # another tracking store, or the run was deleted: start a new one
    run = client.create_run(ensure_experiment(client, experiment), run_name=run_name)
    for key, value in params.items():
        client.log_param(run.info.run_id, key, value)
    Path(scaling_dir).mkdir(parents=True, exist_ok=True)
    write_json_atomic(saved, {"run_id": run.info.run_id, "tracking_uri": tracking_uri()})
    return run.info.run_id


def log_fit(run_id: str, metrics: dict[str, float], artifacts: list[Path]) -> None:
    """Fit numbers as metrics, the plot and `fit.json` as artifacts; the run ends FINISHED."""
    client = _client()
    for key, value in metrics.items():
        client.log_metric(run_id, key, value)
    for path in artifacts:
        client.log_artifact(run_id, str(path))
    client.set_terminated(run_id, "FINISHED")


def child_runs(run_id: str) -> list[Any]:
    """Runs tagged with this parent (any experiment of the store)."""
    client = _client()
    experiments = [e.experiment_id for e in client.search_experiments()]
    return client.search_runs(experiments, filter_string=f"tags.mlflow.parentRunId = '{run_id}'")
