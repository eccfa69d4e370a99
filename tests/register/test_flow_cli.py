"""`lmpipe register / promote / export-hf` through the Prefect training flow on a sqlite store."""

from __future__ import annotations

import json

from mlflow.tracking import MlflowClient

from flows.cli import main
from pipeline.core.stage import read_manifest
from tests.flows.prefect_api import latest_artifact

# No capsys here: Prefect's console log handler would keep the captured stream after the test.


def test_register_promote_export_from_the_command_line(
    local_store, run_factory, tmp_path, prefect_harness
):
    good = run_factory("cli-good", val_loss=4.0, seed=11)
    worse = run_factory("cli-worse", val_loss=4.4, seed=12)
    assert main(["register", str(good), "--name", "lm-cli"]) == 0
    m = read_manifest(good / "register")
    assert m["version"] == "1" and m["champion"] and m["tracking_uri"] == local_store
    link = latest_artifact("registered-model-version")
    assert link["type"] == "markdown"  # what prefect stores for create_link_artifact
    assert "/#/models/lm-cli/versions/1" in link["data"]
    assert m["run_id"] in latest_artifact("mlflow-register-run")["data"]

    assert main(["register", str(good), "--name", "lm-cli"]) == 0  # unchanged: nothing new
    assert main(["register", str(worse), "--name", "lm-cli"]) == 0
    client = MlflowClient()
    aliases = client.get_registered_model("lm-cli").aliases
    assert {k: str(v) for k, v in aliases.items()} == {"champion": "1", "challenger": "2"}
    assert main(["promote", "lm-cli", "2", "--note", "manual"]) == 0
    assert client.get_model_version("lm-cli", "2").tags["lmpipe.promotion"] == "forced"
    assert str(client.get_model_version_by_alias("lm-cli", "champion").version) == "2"

    out = tmp_path / "hf"
    assert main(["export-hf", "models:/lm-cli@champion", "--output", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "llama" and (out / "model.safetensors").is_file()


def test_register_without_a_model_fails_cleanly(local_store, tmp_path, prefect_harness):
    assert main(["register", str(tmp_path / "nothing"), "--name", "lm-none"]) == 1
    assert main(["promote", "no-such-model", "1"]) == 1
