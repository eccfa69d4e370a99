"""A short pretraining run on the sample: it learns, exports, logs to MLflow, and is not redone."""

from __future__ import annotations

import mlflow
import pytest
import torch

from pipeline.model import load_model
from pipeline.pretrain.data import PretrainDataModule
from pipeline.pretrain.metrics import read_metrics
from pipeline.pretrain.module import next_token_loss
from pipeline.pretrain.run import run_pretrain
from tests.pretrain.helpers import tiny_config
from tests.pretrain.token_shards import unigram_entropy

# ~360k tokens (700 steps of 8 x 64): about half a minute on 2 CPU cores. A 3-layer, 96-wide
# model with lr 1e-2 and no weight decay learned fastest per token of the few settings tried.
LEARN = [
    "pretrain.model.d_model=96",
    "pretrain.model.n_layers=3",
    "pretrain.weight_decay=0.0",
    "pretrain.max_steps=700",
    "pretrain.micro_batch_size=8",
    "pretrain.lr=1e-2",
    "pretrain.min_lr=1e-3",
    "pretrain.warmup_steps=30",
    "pretrain.val_interval=350",
    "pretrain.val_batches=8",
    "pretrain.checkpoint_interval=350",
    "pretrain.log_interval=10",
    "pretrain.mlflow=true",
    "pretrain.mlflow_experiment=lmpipe-test-pretrain",
]


def exported_val_loss(stage_dir, tokenize_dir, cfg) -> float:
    """The validation loss recomputed from the exported safetensors, outside Lightning."""
    model = load_model(stage_dir).eval()
    data = PretrainDataModule.from_config(tokenize_dir, cfg, model.config.block_size, eod_id=0)
    losses = []
    with torch.no_grad():
        for batch in data.val_dataloader():
            logits = model(batch["input_ids"], batch.get("positions"), batch.get("doc_ids"))
            losses.append(next_token_loss(logits, batch["labels"]))
    return float(torch.stack(losses).mean())


@pytest.mark.slow  # 700 steps: 16 s alone, 35 s beside another worker
def test_training_on_the_sample_beats_the_unigram_entropy(tokenize_dir, tmp_path, with_mlflow):
    cfg = tiny_config(*LEARN).pretrain
    stage = tmp_path / "run" / "pretrain"
    m = run_pretrain(cfg, tokenize_dir, stage).manifest

    entropy = unigram_entropy(tokenize_dir)  # ~6.4 nats: the best loss without context
    val_loss = m["metrics"]["val_loss"]
    assert val_loss < entropy - 1.0, (val_loss, entropy)
    train, val = read_metrics(stage)
    assert [r["step"] for r in val] == [350, 700]  # every val_interval
    assert val[0]["val_loss"] > val[-1]["val_loss"]
    assert abs(exported_val_loss(stage, tokenize_dir, cfg) - val_loss) < 1e-4
    assert m["counts"]["tokens"] == 700 * 8 * 64
    assert 0 < m["metrics"]["mfu"] < 1 and m["metrics"]["tokens_per_sec"] > 0
    assert (stage / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (stage / "checkpoints" / "last.ckpt").is_file()
    assert len(list((stage / "checkpoints").glob("best-step=*.ckpt"))) == 1

    client = mlflow.MlflowClient(with_mlflow)
    run = client.get_run(m["mlflow"]["run_id"])
    for key in ("train/loss", "train/lr", "train/tokens_per_sec", "train/mfu", "val/loss"):
        assert key in run.data.metrics, key
    assert len(client.get_metric_history(run.info.run_id, "train/loss")) == 70
    assert run.data.params["parameters"] == str(m["counts"]["parameters"])
    assert run.data.params["train_cfg/lr"] == "0.01"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"loss_curve.png", "model_config.json"} <= artifacts

    again = run_pretrain(cfg, tokenize_dir, stage)
    assert again.skipped and again.counts == m["counts"]
