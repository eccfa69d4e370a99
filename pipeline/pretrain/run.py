"""`run_pretrain`: token shards -> trained weights (`<run>/pretrain/model.safetensors`).

Runs in every training process (Lightning starts the other DDP ranks by re-running the same
command; torchrun and srun start them all at once): only global rank 0 prepares the stage
directory, exports the weights, plots and writes the manifest. A rerun resumes from
`checkpoints/last.ckpt` (one that does not load is moved aside and an earlier one taken:
`pipeline/pretrain/resume.py`); a finished run with the same inputs and config is skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import time
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from pipeline.core.card import log_corpus_input
from pipeline.core.stage import (
    MANIFEST,
    StageResult,
    StageRun,
    file_sha256,
    read_manifest,
    write_json_atomic,
)
from pipeline.model import ModelConfig, export_state_dict
from pipeline.model.io import CONFIG as MODEL_CONFIG_FILE
from pipeline.pretrain.config import PretrainConfig, resume_config_hash
from pipeline.pretrain.data import PretrainDataModule
from pipeline.pretrain.launch import plan_pretrain
from pipeline.pretrain.metrics import (
    METRICS_FILE,
    Progress,
    TrainingMonitor,
    plot_loss_curve,
    read_metrics,
)
from pipeline.pretrain.module import PretrainModule
from pipeline.pretrain.resume import resume_checkpoint, settle_resume_checkpoint
from pipeline.pretrain.startup import FIRST_BATCH_PREFIX, StartupClock
from pipeline.pretrain.trainer import (
    CHECKPOINT_DIR,
    LAST,
    MLFLOW_RUN_FILE,
    build_trainer,
    check_devices,
    full_state_dict,
    log_training_artifacts,
    mlflow_loggers,
    recover_checkpoint,
    replica_checksums,
)

STAGE = "pretrain"
STAMP = "run_stamp.json"


def tokenizer_info(tokenize_dir: Path) -> dict[str, Any]:
    """The tokenize manifest's `tokenizer` block (vocab sizes, EOD id, path, fingerprint)."""
    info = (read_manifest(tokenize_dir) or {}).get("tokenizer")
    if not info or "padded_vocab_size" not in info or "eod_id" not in info:
        raise ValueError(f"{tokenize_dir}/{MANIFEST} has no `tokenizer` block: rerun tokenize")
    return info


def token_data(
    cfg: PretrainConfig, tokenize_dir: Path
) -> tuple[dict[str, Any], ModelConfig, PretrainDataModule]:
    """What pretraining reads from a tokenize stage: its tokenizer block, the model config sized
    to that vocabulary, and the data module over its token shards."""
    tok = tokenizer_info(tokenize_dir)
    model_cfg = cfg.model.with_vocab(int(tok["padded_vocab_size"]))
    eod = int(tok["eod_id"]) if cfg.document_masking else None
    data = PretrainDataModule.from_config(tokenize_dir, cfg, model_cfg.block_size, eod)
    return tok, model_cfg, data


# What a start with other inputs or settings discards (the launch files stay: ranks read them).
TRAINING_STATE = (CHECKPOINT_DIR, METRICS_FILE, MLFLOW_RUN_FILE)


def prepare_training_dir(run: StageRun, resume_key: str) -> None:
    """Rank 0: keep checkpoints only if these inputs and settings can resume them.

    `resume_key` leaves out what a resume may change (`RESUMABLE_FIELDS`: more steps, another
    world size). A checkpoint a kill left half-swapped is restored first; one that does not load
    is moved aside and the run resumes from the previous one (`pipeline/pretrain/resume.py`).
    """
    recover_checkpoint(run.out_dir / CHECKPOINT_DIR)
    run.prepare(resume_key, discard=TRAINING_STATE)
    settle_resume_checkpoint(run.out_dir / CHECKPOINT_DIR, run.stage)


def remove_temp_files(out_dir: Path) -> None:
    """Partial checkpoints and weights (`.last.ckpt.tmp-PID`, `.model.safetensors.tmp-PID`)."""
    recover_checkpoint(out_dir / CHECKPOINT_DIR)
    for tmp in out_dir.glob(".*.tmp-*"):
        tmp.unlink(missing_ok=True)


PREPARED = ".prepared"


def launch_token() -> str:
    """An id all ranks of one torchrun/srun launch share ("" when Lightning starts the ranks).

    torchrun's agent picks a fresh MASTER_PORT per launch; SLURM numbers each job step.
    """
    env = os.environ
    if "TORCHELASTIC_RUN_ID" in env:
        keys = ("TORCHELASTIC_RUN_ID", "TORCHELASTIC_RESTART_COUNT", "MASTER_ADDR", "MASTER_PORT")
        return ":".join(env.get(k, "") for k in keys)
    if "SLURM_JOB_ID" in env and "SLURM_STEP_ID" in env:
        return f"slurm:{env['SLURM_JOB_ID']}.{env['SLURM_STEP_ID']}"
    return ""


def mark_prepared(out_dir: Path, key: str) -> None:
    """Rank 0, after preparing the stage directory for `key` (inputs and config): go on."""
    write_json_atomic(out_dir / PREPARED, {"launch": f"{launch_token()}/{key}"})


def wait_for_rank_zero(out_dir: Path, key: str, timeout: float = 600.0) -> None:
    """Other ranks of a torchrun/srun launch wait for rank 0's `prepare` (no process group
    exists yet). Under the python launcher Lightning starts them after it: no wait. A marker
    left by an earlier launch with the same id matches only for the same inputs and config,
    whose prepared files are the same."""
    if not launch_token():
        return
    token = f"{launch_token()}/{key}"
    marker, deadline = out_dir / PREPARED, time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            if json.loads(marker.read_text())["launch"] == token:
                return
        time.sleep(0.2)
    raise TimeoutError(f"rank 0 did not prepare {out_dir} within {timeout:.0f} s")


class RunInfo(L.Callback):
    """At fit start: where training resumed, static MLflow params, and the MLflow run id."""

    def __init__(self, out_dir: Path, params: dict[str, Any], config_key: str = ""):
        self.out_dir, self.params, self.config_key = out_dir, params, config_key
        self.start_step = 0

    def on_train_start(self, trainer, pl_module) -> None:
        self.start_step = trainer.global_step
        for logger in trainer.loggers:
            logger.log_hyperparams(self.params)
            if trainer.is_global_zero and getattr(logger, "run_id", None):
                saved = {"run_id": logger.run_id, "config_key": self.config_key}
                write_json_atomic(self.out_dir / MLFLOW_RUN_FILE, saved)


class TrainingJob:
    """What a pretraining and a fine-tuning job share: `cfg`, `out_dir`, `progress`, `chash` (the
    config hash), and the Lightning trainer with its monitor, run info and MLflow logger."""

    cfg: Any
    out_dir: Path
    progress: Progress | None
    chash: str

    def static_params(self) -> dict[str, Any]:
        """MLflow params fixed for the run (sizes, fingerprints), logged once at fit start."""
        raise NotImplementedError

    def mark(self, phase: str) -> None:
        """A start-up phase ended (pretraining reports them; see `StartupClock`)."""

    def attach_trainer(self, run_name: str, callbacks: list[L.Callback] | None = None) -> None:
        """Build `self.monitor`, `self.info` and `self.trainer` (call once the module exists)."""
        cfg, out = self.cfg, self.out_dir
        self.monitor = TrainingMonitor(out, cfg, self.progress)
        self.info = RunInfo(out, self.static_params(), self.chash)
        self.mark("data and model")
        loggers = mlflow_loggers(cfg, out, run_name, config_key=self.chash)
        self.mark("MLflow")
        callbacks = [self.monitor, self.info, *(callbacks or [])]
        self.trainer = build_trainer(cfg, out, callbacks, loggers)
        self.mark("trainer")


class StartupReport(L.Callback):
    """Prints a `StartupClock`'s line when the first training batch starts, and how long that
    batch took when it ends (`first batch: ...`: with `compile` on, torch.compile builds the
    blocks' forward and backward kernels in it). Rank 0, once."""

    def __init__(self, clock: StartupClock):
        self.clock, self.done, self.first_batch = clock, False, 0.0

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.done:
            return
        self.done = True
        self.clock.mark("fit set-up")
        self.first_batch = time.time()
        if trainer.is_global_zero:
            print(self.clock.line(), flush=True)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if not self.first_batch:
            return
        seconds, self.first_batch = time.time() - self.first_batch, 0.0
        if trainer.is_global_zero:
            compiled = "on" if getattr(pl_module.cfg, "compile", False) else "off"
            print(f"{FIRST_BATCH_PREFIX}{seconds:.1f} s (compile {compiled})", flush=True)


class PretrainJob(TrainingJob):
    """One pretraining run: builds the data, model and trainer, trains, then publishes."""

    def __init__(
        self,
        cfg: PretrainConfig,
        tokenize_dir: Path,
        out_dir: Path,
        progress=None,
        clock: StartupClock | None = None,
    ):
        self.cfg, self.tokenize_dir = cfg, Path(tokenize_dir)
        self.run = plan_pretrain(cfg, self.tokenize_dir, out_dir).start()
        self.out_dir, self.inputs_fp, self.chash = (
            self.run.out_dir,
            self.run.inputs_fp,
            self.run.config_hash,
        )
        self.progress, self.clock = progress, clock

    def mark(self, phase: str) -> None:
        if self.clock is not None:
            self.clock.mark(phase)

    def build(self) -> None:
        cfg = self.cfg
        check_devices(cfg)
        L.seed_everything(cfg.seed, workers=True, verbose=False)
        self.tok, self.model_cfg, self.data = token_data(cfg, self.tokenize_dir)
        self.module = PretrainModule(cfg.model_dump(mode="json"), self.model_cfg.model_dump())
        reports = [StartupReport(self.clock)] if self.clock is not None else []
        self.attach_trainer(f"pretrain-{self.out_dir.parent.name}", reports)

    def static_params(self) -> dict[str, Any]:
        model, block = self.module.model, self.model_cfg.block_size
        return {
            "parameters": model.num_params(),
            "flops_per_token": model.flops_per_token(block),
            "tokenizer_fingerprint": self.tok.get("fingerprint"),
            "inputs_fingerprint": self.inputs_fp,
        }

    def train(self) -> None:
        last = self.out_dir / CHECKPOINT_DIR / LAST
        resume = resume_checkpoint(self.out_dir / CHECKPOINT_DIR)  # rank 0 checked it loads
        self.trainer.fit(self.module, datamodule=self.data, ckpt_path=resume, weights_only=True)
        if self.trainer.global_step % self.cfg.checkpoint_interval:
            # The final step was no checkpoint step: a rerun with more `max_steps` resumes here.
            self.trainer.save_checkpoint(last, weights_only=False)
        if self.trainer.global_step % self.cfg.val_interval:
            # The last step was no validation step: validate the final weights (all ranks decide
            # alike from the step, never from files only rank 0 writes).
            self.trainer.validate(self.module, datamodule=self.data, verbose=False)

    def publish(self) -> None:
        """Every rank takes part (gathers); rank 0 writes weights, curve and manifest."""
        trainer = self.trainer
        fsdp = self.cfg.strategy == "fsdp"  # FSDP shards differ per rank by design
        self.checksums = [] if fsdp else replica_checksums(trainer, self.module.model)
        state = full_state_dict(trainer)
        if not trainer.is_global_zero:
            return
        remove_temp_files(self.out_dir)
        weights = {k.removeprefix("model."): v for k, v in state.items()}
        self.weights_path = export_state_dict(weights, self.model_cfg, self.out_dir)
        title = f"{self.out_dir.parent.name}: {self.module.model.num_params():,} parameters"
        curve = plot_loss_curve(self.out_dir, title)
        paths = [p for p in (curve, self.out_dir / MODEL_CONFIG_FILE) if p is not None]
        self.mlflow_run = log_training_artifacts(trainer, paths)
        if self.mlflow_run:  # the corpus it learned from: the MLflow run's dataset input
            run_id, uri = self.mlflow_run["run_id"], self.mlflow_run["tracking_uri"]
            log_corpus_input(uri, run_id, self.tokenize_dir.parent)
        self._write_manifest()

    def _write_manifest(self) -> None:
        trainer, steps = self.trainer, self.trainer.global_step
        train_rows, val_rows = read_metrics(self.out_dir)
        counts = {
            "steps": steps,
            "tokens": steps * self.monitor.tokens_per_step,
            "parameters": self.module.model.num_params(),
            "train_tokens": len(self.data.train.stream),
            "val_tokens": len(self.data.val.stream),
            "world_size": trainer.world_size,
        }
        self.run.finish(
            self.cfg,
            counts,
            {},
            model_config=self.model_cfg.model_dump(mode="json"),
            metrics=summary_metrics(train_rows, val_rows),
            tokenizer=self.tok,
            tokenizer_path=str((self.tokenize_dir / self.tok["path"]).resolve()),
            weights=self.weights_path.name,
            mlflow=self.mlflow_run,
            replica_checksums=self.checksums,
            resumed_from_step=self.info.start_step,
            peak_flops_per_device=self.monitor.peak_flops / max(trainer.world_size, 1),
            flops_per_token=self.monitor.flops_per_token,
            output_fingerprint=file_sha256(self.weights_path)[:16],
        )


def run_pretrain(
    cfg: PretrainConfig,
    tokenize_dir: str | Path,
    output_dir: str | Path,
    progress: Progress | None = None,
    clock: StartupClock | None = None,
) -> StageResult:
    """Pretrain `cfg.model` on `<tokenize_dir>/{train,val}` into `output_dir` (resumable).

    `clock` (the training process's): print where the seconds before the first step went.
    """
    job = PretrainJob(cfg, Path(tokenize_dir), Path(output_dir), progress, clock)
    if job.run.finished_before():
        return job.run.skip()
    if rank_zero_only.rank == 0:
        prepare_training_dir(job.run, resume_config_hash(cfg))
        mark_prepared(job.out_dir, f"{job.inputs_fp}:{job.chash}")
    else:
        wait_for_rank_zero(job.out_dir, f"{job.inputs_fp}:{job.chash}")
    job.mark("stage directory")
    job.build()
    job.train()
    job.publish()
    return StageResult.from_dir(STAGE, job.out_dir, skipped=False)


def summary_metrics(train_rows: list[dict], val_rows: list[dict]) -> dict[str, float]:
    """Final and best validation loss, last train loss, median tokens/s and MFU."""
    out: dict[str, float] = {}
    if val_rows:
        out |= {"val_loss": val_rows[-1]["val_loss"], "val_ppl": val_rows[-1]["val_ppl"]}
        out["best_val_loss"] = min(r["val_loss"] for r in val_rows)
    if train_rows:
        out["train_loss"] = train_rows[-1]["loss"]
        # The median ignores the first interval's warm-up (allocations, compilation).
        out["tokens_per_sec"] = statistics.median(r["tokens_per_sec"] for r in train_rows)
        if all("mfu" in r for r in train_rows):
            out["mfu"] = statistics.median(r["mfu"] for r in train_rows)
    return out
