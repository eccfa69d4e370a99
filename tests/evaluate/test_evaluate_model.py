"""`lmpipe evaluate --model models:/NAME@ALIAS --tasks ...`: a registered version's task scores."""

from __future__ import annotations

import json

import pytest

from flows.cli import main
from pipeline.evaluate.harness import LmpipeLM
from pipeline.evaluate.registered import model_slug
from pipeline.evaluate.task_scores import task_scores
from tests.finetune.runs import registered_run
from tests.flows.prefect_api import latest_artifact

# No capsys here: Prefect's console log handler would keep the captured stream after the test.


@pytest.mark.slow
def test_a_registered_version_is_scored_from_the_command_line(
    pretrained_run, tmp_path, monkeypatch, prefect_harness
):
    run, version = registered_run(pretrained_run, tmp_path, monkeypatch, "lm-cli-eval")
    args = ["evaluate", "--output", str(run), "--model", version, "--tasks", "cloze"]
    assert main([*args, "--set", "evaluate.task_examples=30"]) == 0
    out = run / "evaluate" / "models" / model_slug(version)
    record = json.loads((out / "scores.json").read_text())
    assert record["model"] == version and record["tasks"] == {"cloze": 30}
    # The same weights from the run directory, through the same harness: the same numbers.
    direct = task_scores(LmpipeLM(pretrained=run / "pretrain"), ["cloze"], out / "tasks")
    assert record["metrics"] == pytest.approx(direct, rel=1e-6)
    assert "cloze_acc" in latest_artifact("evaluate-model")["data"]

    assert main(["evaluate", "--output", str(run), "--model", version, "--tasks", "nope"]) == 1
