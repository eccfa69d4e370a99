"""The pipeline against real servers: Prefect server and MLflow server, both on PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request

import pytest

from tests.conftest import REPO, SAMPLE_WARC

# Real PostgreSQL, prefect and mlflow servers (their start takes 30+ s); slow.
# The timeout leaves room for parallel test workers.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]


def api(url: str, body: dict | None = None) -> dict | list:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def test_data_flow_run_is_recorded_by_the_prefect_server(stack, tmp_path):
    env = {
        **os.environ,
        "PREFECT_API_URL": stack["prefect"],
        "MLFLOW_TRACKING_URI": stack["mlflow"],
    }
    before = {r["id"] for r in api(f"{stack['prefect']}/flow_runs/filter", {"limit": 200})}
    cmd = [sys.executable, "-m", "flows.cli", "ingest", "--input", str(SAMPLE_WARC)]
    out = subprocess.run(
        [*cmd, "--output", str(tmp_path)], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr[-3000:]
    runs = api(f"{stack['prefect']}/flow_runs/filter", {"limit": 200})
    runs = [r for r in runs if r["id"] not in before]  # other tests share the server
    assert [r["state_type"] for r in runs] == ["COMPLETED"]
    flows = api(f"{stack['prefect']}/flows/{runs[0]['flow_id']}")
    assert flows["name"] == "lmpipe-data"


def test_mlflow_server_keeps_runs_in_postgres(stack):
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=stack["mlflow"])
    exp = client.create_experiment("integration-smoke")
    run = client.create_run(exp)
    client.log_metric(run.info.run_id, "x", 1.0)
    assert client.get_run(run.info.run_id).data.metrics == {"x": 1.0}
