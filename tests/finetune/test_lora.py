"""LoRA fine-tuning: only adapters move, the merged model equals base + adapters, MLflow logs it,
and a finished stage is not redone."""

from __future__ import annotations

import mlflow
import torch

from pipeline.finetune.module import add_lora
from pipeline.finetune.run import run_finetune
from pipeline.model import load_model
from tests.finetune.runs import fresh_run, tiny_config

LORA = [
    "finetune.method=lora",
    "finetune.lora.r=4",
    "finetune.lora.alpha=8",
    "finetune.lr=5e-3",
    "finetune.min_lr=5e-4",
    "finetune.mlflow=true",
    "finetune.mlflow_experiment=lmpipe-test-finetune",
]


def test_lora_changes_only_adapters_and_merges_exactly(
    pretrained_run, tmp_path, mlflow_uri, monkeypatch
):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_uri)
    monkeypatch.chdir(tmp_path)
    run = fresh_run(pretrained_run, tmp_path / "run")
    cfg = tiny_config(*LORA).finetune
    result = run_finetune(cfg, run)
    m = result.manifest
    stage = run / "finetune"

    # The last checkpoint holds base weights and adapters: the base weights did not move.
    ckpt = torch.load(stage / "checkpoints" / "last.ckpt", weights_only=True, map_location="cpu")
    state = {k.removeprefix("model."): v for k, v in ckpt["state_dict"].items()}
    base = load_model(run / "pretrain")
    base_state = base.state_dict()
    adapters = {k: v for k, v in state.items() if "lora_" in k}
    assert adapters and any(v.abs().sum() > 0 for k, v in adapters.items() if "lora_B" in k)
    # LoraModel names: "model." (the wrapped DecoderLM) + the plain name, ".base_layer" inside.
    plain = {k.removeprefix("model.").replace(".base_layer", ""): v for k, v in state.items()}
    frozen = {k: v for k, v in plain.items() if "lora_" not in k}
    assert set(frozen) == set(base_state)
    for name, tensor in frozen.items():
        assert torch.equal(tensor, base_state[name]), name
    targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert {k.split(".")[-4] for k in adapters} == targets

    # The exported model is plain and gives the logits of base + adapters.
    merged = load_model(stage).eval()
    with_adapters = add_lora(load_model(run / "pretrain"), cfg.lora.model_dump(), cfg.seed)
    with_adapters.load_state_dict(state, strict=True)
    with_adapters.eval()
    idx = torch.randint(
        0, base.config.vocab_size, (2, 40), generator=torch.Generator().manual_seed(1)
    )
    with torch.no_grad():
        expected, got, before = with_adapters(idx), merged(idx), base.eval()(idx)
    assert torch.allclose(got, expected, atol=1e-5), (got - expected).abs().max()
    assert not torch.allclose(got, before, atol=1e-3)  # the adapters did change the model

    counts = m["counts"]
    assert counts["trainable_parameters"] < counts["parameters"] / 5
    assert counts["steps"] == 40 and counts["train_samples"] > 500 and counts["val_samples"] > 30
    assert m["inputs"]["pretrain"] and m["inputs"]["data_sha256"] and m["config_hash"]
    run_record = mlflow.MlflowClient(mlflow_uri).get_run(m["mlflow"]["run_id"])
    assert "val/loss" in run_record.data.metrics and "train/loss" in run_record.data.metrics
    assert run_record.data.params["method"] == "lora"

    again = run_finetune(cfg, run)
    assert again.skipped and again.counts == counts
