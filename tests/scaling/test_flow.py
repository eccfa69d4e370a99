"""`scaling_flow` end to end on a micro ladder: real training processes, MLflow, Prefect."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

from flows.cli import main
from flows.scaling import scaling_flow
from pipeline.scaling.ladder import SCALING_DIR
from pipeline.scaling.tracking import PARENT_FILE, child_runs
from tests.conftest import REPO
from tests.flows.prefect_api import artifacts
from tests.pretrain.helpers import make_run_dir, tiny_config

# 4 sizes (the holdout fit needs 3), ~4-14 steps each on 64-token sequences.
MICRO_LADDER = [
    "scaling.sizes=[{d_model: 16, n_layers: 1, n_heads: 2}, {d_model: 32, n_layers: 1, n_heads: 2},"
    " {d_model: 32, n_layers: 2, n_heads: 2}, {d_model: 48, n_layers: 2, n_heads: 2}]",
    "scaling.tokens_per_param=[0.02]",
    "scaling.min_steps=4",
    "scaling.bootstrap_samples=100",
    f"scaling.target_config={REPO / 'configs' / '124m.yaml'}",
    "pretrain.mlflow=true",
    "pretrain.micro_batch_size=2",
]


@pytest.mark.slow
def test_micro_ladder_trains_fits_and_nests_the_runs(
    tokenize_dir, tmp_path, with_mlflow, prefect_harness
):
    run_dir = make_run_dir(tmp_path / "run", tokenize_dir)
    config = tiny_config(*MICRO_LADDER, f"run_dir={run_dir}")
    results = scaling_flow(config)

    assert not [p for p in results["points"].values() if "failed" in p]
    assert results["fit"]["counts"] == {"planned": 4, "fitted": 4, "rejected": 0}
    out = run_dir / SCALING_DIR
    fit = json.loads((out / "fit.json").read_text())
    sizes = [p["non_embedding_params"] for p in fit["points"]]
    assert sizes == sorted(sizes) and sizes[-1] > 10 * sizes[0]
    assert fit["loss_vs_params"]["points"] == 4
    hold = fit["holdout"]
    assert hold["fit"]["points"] == 3 and hold["x"] == [sizes[-1]]
    assert hold["actual"] == [fit["points"][-1]["val_loss"]]
    assert fit["target"]["name"] == "124m" and fit["target"]["non_embedding_params"] > 8e7
    assert (out / "scaling.png").stat().st_size > 10_000

    parent = json.loads((out / PARENT_FILE).read_text())["run_id"]
    client = MlflowClient(with_mlflow)
    parent_run = client.get_run(parent)
    assert parent_run.info.status == "FINISHED"
    assert client.get_experiment(parent_run.info.experiment_id).name == "lmpipe-scaling"
    assert "n_alpha" in parent_run.data.metrics and "holdout_actual" in parent_run.data.metrics
    assert {a.path for a in client.list_artifacts(parent)} >= {"scaling.png", "fit.json"}
    children = child_runs(parent)
    assert len(children) == 4
    assert {c.info.experiment_id for c in children} == {parent_run.info.experiment_id}
    assert all(c.data.metrics.get("val/loss") for c in children)

    reports = [a["data"] for a in artifacts(key="scaling-report") if str(run_dir) in a["data"]]
    assert reports and "## Holdout check" in reports[0] and "alpha = " in reports[0]
    assert "Target `124m`" in reports[0]

    # A rerun trains nothing (every point's manifest matches) and keeps the same parent run.
    weights = out / fit["points"][0]["name"] / "pretrain" / "model.safetensors"
    written = weights.stat().st_mtime_ns
    again = scaling_flow(config)
    assert all(p["skipped"] for p in again["points"].values())
    assert weights.stat().st_mtime_ns == written
    assert json.loads((out / PARENT_FILE).read_text())["run_id"] == parent


def test_scaling_before_tokenize_is_a_clear_error(tmp_path, prefect_harness):
    assert main(["scaling", "--output", str(tmp_path), "--set", "pretrain.mlflow=false"]) == 1
    with pytest.raises(FileNotFoundError, match="run the previous stage first"):
        scaling_flow(tiny_config(f"run_dir={tmp_path}"))
    assert not (tmp_path / SCALING_DIR).exists()  # no parent run, no points
