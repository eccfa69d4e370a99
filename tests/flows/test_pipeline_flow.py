"""The end-to-end flow on the sample, on a real (ephemeral) Prefect API: every stage runs; a second
run completes from Prefect's cache; a run that fails in training, rerun, does not redo the data."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pytest

from flows.end_to_end import pipeline_flow
from pipeline.config import load_config
from pipeline.core.stage import read_manifest
from pipeline.pretrain.config import training_config_hash
from pipeline.stages import DATA_STAGES, active
from tests.conftest import REPO
from tests.flows.prefect_api import (
    artifacts,
    latest_artifact,
    log_messages_since,
    task_states_since,
)
from tests.helpers import FAST_DEMO

# Slow: the whole demo pipeline, several times (minutes).
# The timeout leaves room for parallel test workers.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]

# Progress bars asked for: the training flow must still keep their redraws out of the run logs.
BARS_ON = ["pretrain.progress_bar=true", "finetune.progress_bar=true"]


@pytest.fixture(scope="module")
def e2e(tmp_path_factory, prefect_harness):
    work = tmp_path_factory.mktemp("e2e")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{work / 'mlflow.db'}")
        mp.chdir(work)
        cfg = load_config(
            REPO / "configs" / "demo.yaml", [f"run_dir={work / 'run'}", *FAST_DEMO, *BARS_ON]
        )
        cfg = cfg.model_copy(update={"inputs": [str(REPO / "data/sample/*.warc.gz")]})
        t0 = datetime.now(UTC)
        first = pipeline_flow(cfg, return_state=True)
        first_states = task_states_since(t0)
        first_logs = log_messages_since(t0)
        time.sleep(0.01)
        t1 = datetime.now(UTC)
        second = pipeline_flow(cfg, return_state=True)
        yield {
            "cfg": cfg,
            "work": work,
            "first": first,
            "first_states": first_states,
            "first_logs": first_logs,
            "second": second,
            "second_states": task_states_since(t1),
            "mp": mp,
        }


def test_first_run_runs_every_stage(e2e):
    assert e2e["first"].is_completed(), e2e["first"].message
    run = e2e["work"] / "run"
    for stage in active(e2e["cfg"]):  # an optional stage that is off does not run
        assert read_manifest(run / stage), f"{stage} has no manifest"
        assert e2e["first_states"][stage] == ["Completed"], (stage, e2e["first_states"])
    assert read_manifest(run / "dedup")["counts"]["documents"] > 200


def test_second_run_completes_from_cache(e2e):
    assert e2e["second"].is_completed()
    for stage in active(e2e["cfg"]):
        assert e2e["second_states"][stage] == ["Cached"], (stage, e2e["second_states"])
    assert e2e["second"].result()["pretrain"] == e2e["first"].result()["pretrain"]


def test_artifacts_carry_the_numbers(e2e):
    report = latest_artifact("data-report")
    assert "| ingest | 721 | 350 | 10 |" in report["data"]
    tokens = read_manifest(e2e["work"] / "run" / "tokenize")["train"]["tokens"]
    assert f"train: {tokens:,} tokens" in report["data"]
    table = latest_artifact("data-rejections")
    assert table["type"] == "table" and "language" in table["data"]
    pretrain = latest_artifact("pretrain-report")
    assert "val_loss" in pretrain["data"]
    # ... with a link to the training run's page (loss curves) in the MLflow UI.
    assert "[MLflow run `" in pretrain["data"] and "/#/experiments/" in pretrain["data"]
    progress = latest_artifact("pretrain-progress")  # keyed, finished, rounded
    assert progress["type"] == "progress" and progress["data"] == 100.0
    assert "loss" in progress["description"] and "e+" not in progress["description"]
    # The whole page, rewritten by the training subflow, linked from the end-to-end run itself.
    page = e2e["work"] / "run" / "report.html"
    (link,) = artifacts(key="run-report", flow_run_id=e2e["first"].state_details.flow_run_id)
    assert link["data"] == f"[lmpipe report of {page.parent}]({page.as_uri()})"
    html = page.read_text()
    assert "id='loss'" in html and "id='scores'" in html and "id='examples'" in html


def test_demo_corpus_has_a_card_and_is_the_training_runs_dataset_input(e2e):
    """Which data a model learned from, in MLflow: the corpus fingerprint as the digest of the
    pretraining run's (and the fine-tuning run's) dataset input, the card as its profile."""
    import json

    from mlflow import MlflowClient

    from pipeline.core.card import CARD, corpus_digest

    run = e2e["work"] / "run"
    card = (run / CARD).read_text()
    assert f"fingerprint `{corpus_digest(run)}`" in card
    assert latest_artifact("corpus-card")["data"] == card
    client = MlflowClient(f"sqlite:///{e2e['work'] / 'mlflow.db'}")
    for stage, context in (("pretrain", "training"), ("finetune", "pretraining")):
        logged = client.get_run(read_manifest(run / stage)["mlflow"]["run_id"]).inputs
        (only,) = logged.dataset_inputs
        assert only.dataset.digest == corpus_digest(run), stage
        assert json.loads(only.dataset.profile)["card"] == card
        assert {t.key: t.value for t in only.tags}["mlflow.data.context"] == context


def test_run_logs_have_no_progress_bar_redraws(e2e):
    """Progress shows as the `<stage>-progress` artifact; the log keeps one line per step."""
    logs = e2e["first_logs"]
    assert any(line.startswith("step ") and "loss" in line for line in logs), logs[:50]
    redraws = [line for line in logs if "it/s" in line or "%|" in line]
    assert not redraws, redraws[:5]


def test_deleted_stage_output_is_rebuilt_not_taken_from_cache(e2e):
    import shutil

    run = e2e["work"] / "run"
    shutil.rmtree(run / "tokenize")
    t0 = datetime.now(UTC)
    state = pipeline_flow(
        e2e["cfg"], stages=["ingest", "clean", "dedup", "tokenize"], return_state=True
    )
    assert state.is_completed()
    states = task_states_since(t0)
    assert states["dedup"] == ["Cached"] and states["tokenize"] == ["Completed"]
    assert read_manifest(run / "tokenize")["train"]["tokens"] > 0


def test_failed_training_rerun_does_not_redo_the_data_stages(e2e):
    run = e2e["work"] / "run"
    data = [s for s in active(e2e["cfg"]) if s in DATA_STAGES]
    written = {s: read_manifest(run / s)["written_at"] for s in data}
    # A new pretraining config that cannot finish within its (1 s) time limit: the flow fails.
    failing = e2e["cfg"].model_copy(deep=True)
    failing.pretrain.seed = 7
    failing.pretrain.time_limit_minutes = 1 / 60
    t0 = datetime.now(UTC)
    state = pipeline_flow(failing, return_state=True)
    assert state.is_failed()
    states = task_states_since(t0)
    assert all(states[s] == ["Cached"] for s in data), states
    assert states["pretrain"] == ["Failed"]

    fixed = failing.model_copy(deep=True)
    fixed.pretrain.time_limit_minutes = 0
    t1 = datetime.now(UTC)
    state = pipeline_flow(fixed, return_state=True)
    assert state.is_completed(), state.message
    states = task_states_since(t1)
    assert all(states[s] == ["Cached"] for s in data), states
    assert states["pretrain"] == ["Completed"]
    assert {s: read_manifest(run / s)["written_at"] for s in data} == written
    assert read_manifest(run / "pretrain")["config_hash"] == training_config_hash(fixed.pretrain)
