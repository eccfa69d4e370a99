"""`run_finetune`: pretrained weights + instruction data -> `<run>/finetune/model.safetensors`.

The stage prepares the samples (templated, masked, split; bad lines in `rejected/`), trains
with the Lightning machinery of pretraining (trainer builder, checkpoints and resume, MLflow
logger, metrics monitor), then exports a plain `DecoderLM` (LoRA merged) next to
`model_config.json` and writes the manifest. Like pretraining it runs in every DDP rank; only
global rank 0 prepares, exports and writes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from pipeline.core.card import log_corpus_input
from pipeline.core.layout import RunLayout
from pipeline.core.stage import (
    StageResult,
    file_sha256,
)
from pipeline.finetune.config import FinetuneConfig
from pipeline.finetune.data import STAGE, prepare_sft_data
from pipeline.finetune.launch import plan_finetune, resolve_data_path
from pipeline.finetune.module import (
    FinetuneDataModule,
    FinetuneModule,
    add_lora,
    merged_model,
)
from pipeline.model import ModelConfig, export_state_dict, load_model
from pipeline.model.chat import load_chat_tokenizer
from pipeline.model.io import CONFIG as MODEL_CONFIG_FILE
from pipeline.pretrain.metrics import Progress, plot_loss_curve, read_metrics
from pipeline.pretrain.resume import resume_checkpoint
from pipeline.pretrain.run import (
    TrainingJob,
    mark_prepared,
    prepare_training_dir,
    summary_metrics,
    tokenizer_info,
    wait_for_rank_zero,
)
from pipeline.pretrain.trainer import (
    CHECKPOINT_DIR,
    check_devices,
    full_state_dict,
    log_training_artifacts,
)
from pipeline.stages import StageName


class FinetuneJob(TrainingJob):
    """One fine-tuning run: data, model and trainer; train; export the merged weights."""

    def __init__(
        self, cfg: FinetuneConfig, layout: RunLayout, out_dir: Path, progress: Progress | None
    ):
        self.cfg, self.layout, self.progress = cfg, layout, progress
        self.pretrain_dir, self.tokenize_dir = layout.pretrain, layout.tokenize
        plan = plan_finetune(cfg, layout, out_dir)
        self.inputs, self.run = plan.detail, plan.start()
        self.out_dir, self.inputs_fp, self.chash = (
            self.run.out_dir,
            self.run.inputs_fp,
            self.run.config_hash,
        )

    def prepare(self) -> None:
        """Rank 0: reset a stale stage directory and write the sample shards."""
        prepare_training_dir(self.run, self.chash)
        block = self._model_cfg().block_size
        self.prepared = prepare_sft_data(
            resolve_data_path(self.cfg.data),
            load_chat_tokenizer(self._tokenizer_path()),
            self.out_dir,
            block,
            self.cfg.min_response_tokens,
            self.cfg.val_fraction,
        )

    def _tokenizer_path(self) -> Path:
        return self.tokenize_dir / Path(tokenizer_info(self.tokenize_dir)["path"]).name

    def _model_cfg(self) -> ModelConfig:
        return ModelConfig.model_validate_json((self.pretrain_dir / MODEL_CONFIG_FILE).read_text())

    def build(self) -> None:
        cfg = self.cfg
        self.model_cfg = self._model_cfg()
        check_devices(cfg)
        self.tok = tokenizer_info(self.tokenize_dir)
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        self.data = FinetuneDataModule(
            self.out_dir,
            self.model_cfg.block_size,
            int(self.tok["pad_id"]),
            cfg.micro_batch_size,
            cfg.grad_accum,
            cfg.seed,
            cfg.val_batches,
        )
        lora = cfg.lora.model_dump() if cfg.method == "lora" else None
        self.module = FinetuneModule(
            cfg.model_dump(mode="json"),
            self.model_cfg.model_dump(),
            str(self.pretrain_dir),
            lora,
        )
        self.attach_trainer(f"finetune-{self.layout.run_dir.name}")

    def static_params(self) -> dict[str, Any]:
        model = self.module.model
        return {
            "method": self.cfg.method,
            "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
            # The served (merged) model's size: adapters fold into the weights they adapt.
            "parameters": sum(p.numel() for n, p in model.named_parameters() if "lora_" not in n),
            "inputs_fingerprint": self.inputs_fp,
            "pretrain_fingerprint": self.inputs[StageName.PRETRAIN],
            "data_sha256": self.inputs["data_sha256"],
        }

    def train(self) -> None:
        resume = resume_checkpoint(self.out_dir / CHECKPOINT_DIR)  # rank 0 checked it loads
        self.trainer.fit(self.module, datamodule=self.data, ckpt_path=resume, weights_only=True)
        if self.trainer.global_step % self.cfg.val_interval:
            self.trainer.validate(self.module, datamodule=self.data, verbose=False)

    def publish(self) -> None:
        """Every rank takes part (FSDP gathers); rank 0 exports the merged plain model."""
        lora, sharded = self.cfg.method == "lora", self.cfg.strategy == "fsdp"
        if not lora or sharded:
            state = full_state_dict(self.trainer)  # a collective under FSDP
            weights = {k.removeprefix("model."): v for k, v in state.items()}
        if not self.trainer.is_global_zero:
            return
        if lora:
            # Under FSDP the module holds shards: merge in an unsharded copy built from them.
            model = self._unsharded_lora(weights) if sharded else self.module.model
            weights = merged_model(model).state_dict()
        self.weights_path = export_state_dict(weights, self.model_cfg, self.out_dir)
        title = f"finetune ({self.cfg.method}) {self.layout.run_dir.name}"
        curve = plot_loss_curve(self.out_dir, title)
        paths = [p for p in (curve, self.out_dir / MODEL_CONFIG_FILE) if p is not None]
        self.mlflow_run = log_training_artifacts(self.trainer, paths)
        if self.mlflow_run:  # the corpus its base model learned from
            run_id, uri = self.mlflow_run["run_id"], self.mlflow_run["tracking_uri"]
            log_corpus_input(uri, run_id, self.layout.run_dir, context="pretraining")
        self._write_manifest()

    def _unsharded_lora(self, state: dict[str, Any]) -> torch.nn.Module:
        model = add_lora(load_model(self.pretrain_dir), self.cfg.lora.model_dump(), self.cfg.seed)
        model.load_state_dict(state)
        return model

    def _write_manifest(self) -> None:
        steps = self.trainer.global_step
        train_rows, val_rows = read_metrics(self.out_dir)
        params = self.static_params()
        counts = {
            **self.prepared.counts,
            "steps": steps,
            "parameters": params["parameters"],
            "trainable_parameters": params["trainable_parameters"],
            "world_size": self.trainer.world_size,
        }
        self.run.finish(
            self.cfg,
            counts,
            self.prepared.reasons,
            inputs=self.inputs,
            model_config=self.model_cfg.model_dump(mode="json"),
            metrics=summary_metrics(train_rows, val_rows),
            tokenizer=self.tok,
            tokenizer_path=str(self._tokenizer_path().resolve()),
            base_model=str(self.pretrain_dir.resolve()),
            weights=self.weights_path.name,
            mlflow=self.mlflow_run,
            resumed_from_step=self.info.start_step,
            output_fingerprint=file_sha256(self.weights_path)[:16],
        )


def run_finetune(
    cfg: FinetuneConfig,
    run: RunLayout | str | Path,
    output_dir: str | Path | None = None,
    progress: Progress | None = None,
) -> StageResult:
    """Fine-tune `run`'s pretrained model (with its tokenizer) on `cfg.data` into `output_dir`
    (default `<run>/finetune`); resumable. `run`: the run whose stages it reads."""
    layout = RunLayout.of(run)
    job = FinetuneJob(cfg, layout, Path(output_dir or layout.finetune), progress)
    if job.run.finished_before():
        return job.run.skip()
    if rank_zero_only.rank == 0:
        job.prepare()
        mark_prepared(job.out_dir, f"{job.inputs_fp}:{job.chash}")
    else:  # the sample shards rank 0 writes
        wait_for_rank_zero(job.out_dir, f"{job.inputs_fp}:{job.chash}")
    job.build()
    job.train()
    job.publish()
    return StageResult.from_dir(STAGE, job.out_dir, skipped=False)
