"""Registration against a real `mlflow server`: versions, aliases, lineage tags, model card."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from pipeline.core.stage import file_sha256, read_manifest
from pipeline.register.config import RegistryConfig
from pipeline.register.promote import CHALLENGER, CHAMPION, force_promote
from pipeline.register.register import run_register

T = "lmpipe."


def aliases(client: MlflowClient, name: str) -> dict[str, str]:
    return dict(client.get_registered_model(name).aliases)


def test_better_version_is_champion_worse_stays_challenger(tracking, run_factory):
    client, name = MlflowClient(), "lm-aliases"
    cfg = RegistryConfig(model_name=name)
    good = run_factory("good", val_loss=4.0, seed=1)
    worse = run_factory("worse", val_loss=4.5, seed=2)
    failed = run_factory("failed", val_loss=3.0, seed=3, passed=False)

    first = run_register(cfg, good).manifest
    assert first["champion"] and first["aliases"] == [CHALLENGER, CHAMPION]
    assert "no champion yet" in first["promotion_reason"]

    second = run_register(cfg, worse).manifest
    assert not second["champion"]
    assert "does not beat champion v1" in second["promotion_reason"]
    assert aliases(client, name) == {CHAMPION: "1", CHALLENGER: "2"}

    # A lower loss with a failed gate never becomes champion on its own.
    third = run_register(cfg, failed).manifest
    assert not third["champion"] and "gate not passed" in third["promotion_reason"]
    assert aliases(client, name) == {CHAMPION: "1", CHALLENGER: "3"}
    assert client.get_model_version(name, "3").tags[T + "promotion"] == "no"

    # Rerunning an unchanged registration registers nothing new.
    again = run_register(cfg, good)
    assert again.skipped and again.manifest["version"] == "1"
    assert len(client.search_model_versions(f"name='{name}'")) == 3

    force_promote(client, name, "2", note="canary looked good")
    assert aliases(client, name)[CHAMPION] == "2"
    tags = client.get_model_version(name, "2").tags
    assert tags[T + "promotion"] == "forced" and tags[T + "promotion.previous"] == "1"
    assert "canary looked good" in tags[T + "promotion.reason"]


def test_tags_lead_back_to_the_exact_data_and_tokenizer(tracking, run_factory, tmp_path):
    client, name = MlflowClient(), "lm-lineage"
    run_dir = run_factory("lineage", val_loss=4.2, seed=4, finetune=True)
    # The training run lives in this server: registration logs as its child, same experiment.
    exp = client.create_experiment("lmpipe-finetune-test")
    training = client.create_run(exp).info.run_id
    ft = read_manifest(run_dir / "finetune")
    (run_dir / "finetune" / "manifest.json").write_text(
        json.dumps({**ft, "mlflow": {"run_id": training, "tracking_uri": tracking}})
    )
    m = run_register(RegistryConfig(model_name=name), run_dir).manifest
    mv = client.get_model_version(name, m["version"])
    tags = mv.tags

    dedup = json.loads(Path(tags[T + "data.manifest"]).read_text())
    assert dedup["output_fingerprint"] == tags[T + "data.fingerprint"]
    tokenize = json.loads(Path(tags[T + "tokens.manifest"]).read_text())
    assert tokenize["tokenizer"]["fingerprint"] == tags[T + "tokenizer.fingerprint"]
    assert file_sha256(run_dir / "tokenize" / "tokenizer.json") == tags[T + "tokenizer.sha256"]
    # ... and the tokenizer inside the registered model is that very file.
    local = Path(
        mlflow.artifacts.download_artifacts(f"models:/{name}/{mv.version}", dst_path=str(tmp_path))
    )
    shipped = next(local.glob("artifacts/tokenizer.json"))
    assert file_sha256(shipped) == tags[T + "tokenizer.sha256"]
    assert (
        file_sha256(next(local.glob("artifacts/model.safetensors"))) == tags[T + "weights.sha256"]
    )

    assert tags[T + "source_stage"] == "finetune"
    assert tags[T + "config_hash.finetune"] == "finetune-cfg"
    assert tags[T + "code.version"] == "0.1.0" and tags[T + "code.git_commit"]
    assert tags[T + "gate.passed"] == "True" and float(tags[T + "metric.val_loss"]) == 4.2
    assert tags[T + "training.mlflow_run_id"] == training
    run = client.get_run(m["run_id"])
    assert run.info.experiment_id == exp and run.data.tags["mlflow.parentRunId"] == training
    assert "parameters" in mv.description and "val_loss 4.2" in mv.description
    registered = client.get_registered_model(name)  # the model's own page, not only versions
    assert f"models:/{name}@champion" in registered.description
    assert registered.tags["task"] == "text-generation"
    assert m["model_uri"] == f"models:/{name}/{mv.version}"
    assert read_manifest(run_dir / "register")["lineage"] == {
        k: v for k, v in tags.items() if k.startswith(T) and not k.startswith(T + "promotion")
    }


def test_unevaluated_run_is_registered_but_never_champion(tracking, run_factory):
    name = "lm-unevaluated"
    m = run_register(RegistryConfig(model_name=name), run_factory("raw", val_loss=None)).manifest
    assert m["aliases"] == [CHALLENGER] and not m["champion"]
    assert m["gate"]["rule"] == "not evaluated"
    assert MlflowClient().get_model_version(name, "1").tags[T + "gate.passed"] == "False"


def test_a_run_without_weights_is_a_clear_error(tracking, tmp_path):
    from pipeline.core.stage import MissingUpstreamError

    with pytest.raises(MissingUpstreamError, match="no trained model"):
        run_register(RegistryConfig(model_name="lm-none"), tmp_path / "empty-run")
