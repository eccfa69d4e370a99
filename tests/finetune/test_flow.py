"""`lmpipe finetune` and `lmpipe evaluate` through the Prefect training flow."""

from __future__ import annotations

import json

from flows.cli import main
from tests.finetune.runs import TINY, fresh_run

# No capsys here: Prefect's console log handler would keep the captured stream after the test.


def test_lmpipe_finetune_then_evaluate(pretrained_run, tmp_path, prefect_harness, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the CLI may write sqlite:///mlflow.db in the cwd
    run_dir = fresh_run(pretrained_run, tmp_path / "run")
    overrides = [
        *TINY,
        "finetune.max_steps=6",
        "finetune.warmup_steps=1",
        "finetune.val_interval=3",
    ]
    overrides += ["finetune.log_interval=3", "evaluate.max_new_tokens=4"]
    common = ["--output", str(run_dir)]
    for override in overrides:
        common += ["--set", override]

    assert main(["finetune", *common]) == 0  # a training process of its own, like pretraining
    ft = json.loads((run_dir / "finetune" / "manifest.json").read_text())
    assert ft["counts"]["steps"] == 6 and ft["counts"]["records"] == 1049
    weights = run_dir / "finetune" / "model.safetensors"
    written = weights.stat().st_mtime_ns

    assert main(["evaluate", *common]) == 0
    ev = json.loads((run_dir / "evaluate" / "manifest.json").read_text())
    assert set(ev["gate"]) >= {"metric", "value", "baseline", "threshold", "passed", "rule"}
    assert (run_dir / "evaluate" / "samples.json").is_file()

    assert main(["finetune", *common]) == 0  # unchanged: nothing is retrained
    assert weights.stat().st_mtime_ns == written


def test_finetune_before_pretrain_is_a_clear_error(tmp_path, prefect_harness):
    assert main(["finetune", "--output", str(tmp_path)]) == 1
