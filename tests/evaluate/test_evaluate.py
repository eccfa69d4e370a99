"""Evaluation: fine-tuning on the bundled set beats the base model, the gate blocks a worse
model, and the manifest carries what registration reads."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from pipeline.core.integrity import file_records
from pipeline.core.stage import read_manifest, write_manifest
from pipeline.evaluate.config import GateConfig
from pipeline.evaluate.run import apply_gate, run_evaluate
from pipeline.evaluate.tasks import split_documents
from pipeline.finetune.run import run_finetune
from pipeline.model import DecoderLM, export_state_dict, load_model
from tests.finetune.runs import fresh_run, tiny_config

FULL = ["finetune.method=full", "finetune.lr=3e-3", "finetune.min_lr=3e-4"]


@pytest.fixture(scope="module")
def finetuned_run(pretrained_run, tmp_path_factory):
    run = fresh_run(pretrained_run, tmp_path_factory.mktemp("eval") / "run")
    run_finetune(tiny_config(*FULL).finetune, run)
    return run


def test_fine_tuning_on_the_bundled_set_lowers_the_response_loss(finetuned_run):
    cfg = tiny_config(*FULL).evaluate
    m = run_evaluate(cfg, finetuned_run).manifest
    metrics, gate = m["metrics"], m["gate"]
    assert metrics["sft_val_loss"] < metrics["base_sft_val_loss"] - 0.3, metrics
    assert gate["passed"] and gate["metric"] == "sft_val_loss"
    assert gate["value"] == metrics["sft_val_loss"]
    assert gate["baseline"] == metrics["base_sft_val_loss"] and gate["threshold"] == 0.0
    assert "must be below base_sft_val_loss" in gate["rule"]
    for key in ("base_pretrain_val_loss", "pretrain_val_loss", "pretrain_val_ppl", "sft_val_ppl"):
        assert metrics[key] > 0
    for prefix in ("", "base_"):  # lm-eval task scores of both models, with standard errors
        for key in ("cloze_acc", "mc_acc", "mc_acc_norm"):
            assert 0.0 <= metrics[prefix + key] <= 1.0
            assert metrics[prefix + key + "_stderr"] >= 0.0, prefix + key
    assert m["counts"]["cloze_examples"] > 20 and m["counts"]["mc_examples"] > 20
    assert metrics["mc_acc_stderr"] > 0.0 and metrics["mc_acc_norm_stderr"] > 0.0, metrics
    # Contamination: the items found in the pretraining documents, per task, and the scores of
    # both models on the others (tests/evaluate/test_harness.py plants items).
    found = m["contamination"]
    train = sum(1 for _ in split_documents(finetuned_run, "train"))
    assert found["corpus"] == "tokenize/train" and found["documents"] == train > 0
    for task in ("cloze", "mc"):
        n, dirty = m["counts"][f"{task}_examples"], found["contaminated"][task]
        assert metrics[f"{task}_items"] == n and metrics[f"{task}_clean_items"] == n - len(dirty)
        assert metrics[f"{task}_contaminated_share"] == len(dirty) / n
        for prefix in ("", "base_"):
            assert (prefix + f"{task}_acc_clean" in metrics) == (len(dirty) < n)
    # Passages of held-out documents: few share a 13-gram with a training page (boilerplate).
    assert metrics["cloze_contaminated_share"] < 0.1
    n, clean = metrics["cloze_items"], metrics["cloze_clean_items"]
    for prefix in ("", "base_"):  # the contaminated items' hits are what the clean set lacks
        dirty_hits = metrics[f"{prefix}cloze_acc"] * n - metrics[f"{prefix}cloze_acc_clean"] * clean
        assert -1e-6 <= dirty_hits <= n - clean + 1e-6
        assert metrics[f"{prefix}cloze_acc_clean_stderr"] >= 0.0
    samples = json.loads((finetuned_run / "evaluate" / "samples.json").read_text())
    assert set(samples) == set(cfg.prompts) and all(isinstance(v, str) for v in samples.values())
    assert run_evaluate(cfg, finetuned_run).skipped


def test_the_gate_blocks_a_model_that_is_worse_than_its_base(finetuned_run, tmp_path):
    run = fresh_run(finetuned_run.resolve().parent / "run", tmp_path / "worse")
    shutil.copytree(finetuned_run / "finetune", run / "finetune")
    base = load_model(run / "pretrain")
    torch.manual_seed(3)
    worse = DecoderLM(base.config)  # an untrained network in place of the fine-tuned one
    export_state_dict(worse.state_dict(), base.config, run / "finetune")
    m = read_manifest(run / "finetune")
    files, mtimes = file_records(run / "finetune")  # the stage's output is now these weights
    new = {"output_fingerprint": "random-weights", "files": files, "file_mtimes": mtimes}
    write_manifest(run / "finetune", **{**m, **new})
    result = run_evaluate(tiny_config().evaluate, run).manifest
    assert result["gate"]["passed"] is False
    assert result["metrics"]["sft_val_loss"] > result["metrics"]["base_sft_val_loss"]


def test_gate_rules():
    metrics = {"loss": 2.0, "base": 2.5, "acc": 0.7}
    assert apply_gate(GateConfig(metric="loss", baseline="base"), metrics)["passed"]
    margin = GateConfig(metric="loss", baseline="base", threshold=0.6)
    assert not apply_gate(margin, metrics)["passed"]  # better, but not by 0.6
    bound = GateConfig(metric="acc", baseline=None, threshold=0.75, higher_is_better=True)
    gate = apply_gate(bound, metrics)
    assert not gate["passed"] and gate["baseline"] is None and "above 0.75" in gate["rule"]
    with pytest.raises(ValueError, match="evaluate.gate.metric"):
        apply_gate(GateConfig(metric="bleu"), metrics)
    versus = GateConfig(metric="acc", baseline=None, higher_is_better=True, beat_champion=True)
    assert apply_gate(versus, metrics | {"champion_acc": 0.6})["passed"]
    lost = apply_gate(versus, metrics | {"champion_acc": 0.8})
    assert not lost["passed"] and "and above champion_acc (0.8000)" in lost["rule"]


def test_the_gate_compares_with_the_champion_scored_on_the_same_tasks(
    finetuned_run, tmp_path, monkeypatch
):
    """The registered version is this very model: scored on this run's tasks it ties, so a
    gate that must beat the champion fails, while the base-model comparison alone passes."""
    from pipeline.register.config import RegistryConfig
    from pipeline.register.register import run_register

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    run = fresh_run(finetuned_run.resolve().parent / "run", tmp_path / "again")
    shutil.copytree(finetuned_run / "finetune", run / "finetune")
    run_register(RegistryConfig(tracking_uri=uri, model_name="lm-eval-gate"), finetuned_run)
    gate = ["evaluate.gate.metric=mc_acc_norm", "evaluate.gate.baseline=null"]
    gate += ["evaluate.gate.threshold=0", "evaluate.gate.higher_is_better=true"]
    cfg = tiny_config(*gate, "evaluate.champion=models:/lm-eval-gate@challenger").evaluate
    beat = cfg.model_copy(update={"gate": cfg.gate.model_copy(update={"beat_champion": True})})
    m = run_evaluate(beat, run).manifest
    metrics = m["metrics"]
    assert metrics["champion_mc_acc_norm"] == pytest.approx(metrics["mc_acc_norm"], abs=1e-9)
    assert metrics["champion_cloze_acc"] == pytest.approx(metrics["cloze_acc"], abs=1e-9)
    assert m["gate"]["passed"] is False and m["gate"]["champion"] == metrics["mc_acc_norm"]
    assert "and above champion_mc_acc_norm" in m["gate"]["rule"]

    missing = beat.model_copy(update={"champion": "models:/no-such-model@champion"})
    shutil.rmtree(run / "evaluate")
    m = run_evaluate(missing, run).manifest
    assert not any(k.startswith("champion_") for k in m["metrics"])
    assert "(no champion to beat yet)" in m["gate"]["rule"]
