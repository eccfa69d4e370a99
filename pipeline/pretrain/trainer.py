"""Building the Lightning Trainer from a `TrainingConfig`: strategy, checkpoints, loggers, bar."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.plugins import TorchCheckpointIO
from lightning.pytorch.strategies import DDPStrategy, ModelParallelStrategy, Strategy
from lightning.pytorch.utilities.rank_zero import rank_zero_only

from pipeline.io.tracking_store import default_uri, ensure_experiment, ensure_store
from pipeline.pretrain.config import TrainingConfig

CHECKPOINT_DIR = "checkpoints"
LAST = "last.ckpt"
MLFLOW_RUN_FILE = "mlflow_run.json"


def build_strategy(cfg: TrainingConfig) -> str | Strategy:
    """`auto`, DDP, or FSDP2 (`PretrainModule.configure_model` shards each block)."""
    if cfg.strategy == "fsdp":
        return fsdp_strategy(cfg)
    if cfg.strategy == "ddp":
        # Every parameter gets a gradient each step; bucket views save one gradient copy.
        return DDPStrategy(find_unused_parameters=False, gradient_as_bucket_view=True)
    return "auto"


def fsdp_strategy(cfg: TrainingConfig) -> AtomicModelParallelStrategy:
    """Lightning's FSDP2 strategy: a device mesh of all ranks, gloo on CPU, NCCL on GPU.

    Its 2-D mesh is (data_parallel, tensor_parallel); this project has no tensor parallelism and
    uses the second axis as the shard axis: (1, world) shards over every rank, (nodes, devices)
    replicates across nodes and shards within one (HYBRID_SHARD, FSDP2's HSDP).
    """
    hybrid = cfg.fsdp.sharding_strategy == "HYBRID_SHARD"
    replicas = cfg.num_nodes if hybrid else 1
    shards = cfg.devices if hybrid else "world"
    return AtomicModelParallelStrategy(
        data_parallel_size=replicas,
        tensor_parallel_size=shards,
        save_distributed_checkpoint=cfg.fsdp.state_dict_type == "sharded",
    )


def check_devices(cfg: TrainingConfig) -> None:
    """Fail before any process starts when the config asks for hardware that is not here."""
    if cfg.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise ValueError(f"`{cfg.section}.accelerator` is {cfg.accelerator} but no GPU is visible")
    if cfg.strategy == "fsdp" and cfg.precision == "16-mixed":
        raise ValueError(
            f"`{cfg.section}.precision` 16-mixed is not supported with fsdp: use bf16-mixed"
        )


class AtomicCheckpointIO(TorchCheckpointIO):
    """Checkpoints land under a temporary name and are renamed: a kill never tears last.ckpt."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        super().save_checkpoint(checkpoint, tmp, storage_options)
        os.replace(tmp, path)


class AtomicModelParallelStrategy(ModelParallelStrategy):
    """FSDP2 checkpoints (a directory of shards) written aside, then renamed into place.

    All ranks write into `.NAME.tmp`; after a barrier rank 0 moves the old checkpoint to
    `.NAME.old`, renames the new one and deletes the old one. A kill at any point leaves either
    a complete `NAME` or a complete `.NAME.old` (`recover_checkpoint` puts it back), never a
    partial directory under the name resume looks for.
    """

    def setup_environment(self) -> None:
        if self._tensor_parallel_size == "world":  # Lightning's "auto" is one node's ranks
            self._tensor_parallel_size = self.num_nodes * self.num_processes
        super().setup_environment()

    def save_checkpoint(self, checkpoint, filepath, storage_options=None) -> None:
        path = Path(self.broadcast(str(filepath)))  # one name on every rank
        tmp = path.with_name(f".{path.name}.tmp")
        if self.is_global_zero:
            shutil.rmtree(tmp, ignore_errors=True)
        self.barrier("checkpoint-tmp")
        super().save_checkpoint(checkpoint, tmp, storage_options)
        self.barrier("checkpoint-written")
        if self.is_global_zero:
            _swap_in(tmp, path)
        self.barrier("checkpoint-renamed")

    def remove_checkpoint(self, filepath) -> None:
        if self.is_global_zero:
            path = Path(filepath)
            shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(True)


def _swap_in(new: Path, path: Path) -> None:
    old = path.with_name(f".{path.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if path.exists():
        os.replace(path, old)
    os.replace(new, path)
    shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)


def recover_checkpoint(ckpt_dir: Path) -> None:
    """Rank 0 at start: delete partial temp checkpoints, restore one a kill left as `.old`."""
    if not ckpt_dir.is_dir():
        return
    for tmp in ckpt_dir.glob(".*.tmp*"):
        shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink(missing_ok=True)
    for old in ckpt_dir.glob(".*.old"):
        target = old.with_name(old.name[1 : -len(".old")])
        if target.exists():
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(True)
        else:
            os.replace(old, target)  # the kill came between the two renames of `_swap_in`


class RunProgressBar(TQDMProgressBar):
    """One bar over the whole run: the train loader is endless, so there is no epoch length."""

    @property
    def total_train_batches(self) -> int:
        return self.trainer.max_steps * self.trainer.accumulate_grad_batches


def checkpoint_callbacks(cfg: TrainingConfig, out_dir: Path) -> list[ModelCheckpoint]:
    """`last.ckpt` every `checkpoint_interval` steps and `best-step=N.ckpt` by val loss."""
    ckpt_dir = Path(out_dir) / CHECKPOINT_DIR
    last = ModelCheckpoint(
        dirpath=ckpt_dir,
        save_top_k=0,
        save_last=True,
        every_n_train_steps=cfg.checkpoint_interval,
        enable_version_counter=False,
    )
    best = ModelCheckpoint(
        dirpath=ckpt_dir,
        filename="best-{step}",
        monitor="val/loss",
        mode="min",
        save_top_k=1,
        enable_version_counter=False,
    )
    return [last, best]


def mlflow_loggers(
    cfg: TrainingConfig, out_dir: Path, run_name: str, config_key: str = ""
) -> list[MLFlowLogger]:
    """The MLflow logger; a resumed run keeps logging into the MLflow run it started.

    MLflow refuses to change a logged param, so a resume under another `config_key` (more
    `max_steps`, another world size) logs into a new run tagged `lmpipe.resumed_from_run`.
    """
    if not cfg.mlflow:
        return []
    uri = ensure_store(default_uri())  # concurrent first runs: one creates the sqlite tables
    saved = Path(out_dir) / MLFLOW_RUN_FILE
    previous = json.loads(saved.read_text()) if saved.is_file() else {}
    run_id = previous.get("run_id")
    tags = {"mlflow.parentRunId": cfg.mlflow_parent_run_id} if cfg.mlflow_parent_run_id else {}
    if run_id and previous.get("config_key", "") != config_key:
        tags["lmpipe.resumed_from_run"] = run_id
        if rank_zero_only.rank == 0:
            print(
                f"MLflow: run {run_id} was logged with another max_steps or world size; "
                "logging this resumed run into a new run (tag lmpipe.resumed_from_run)",
                flush=True,
            )
        run_id = None
    # Lightning's logger creates a missing experiment without handling a concurrent run's
    # creating it first (RESOURCE_ALREADY_EXISTS): it gets an experiment that already exists.
    from mlflow import MlflowClient

    ensure_experiment(MlflowClient(tracking_uri=uri), cfg.mlflow_experiment)
    logger = MLFlowLogger(
        experiment_name=cfg.mlflow_experiment,
        tracking_uri=uri,
        run_name=run_name,
        run_id=run_id,
        tags=tags or None,  # a parent tag nests the run under it (UI tree, search by parent)
        log_model=False,
    )
    return [logger]


def log_training_artifacts(trainer: L.Trainer, paths: list[Path]) -> dict[str, Any]:
    """Log `paths` into the trainer's MLflow run; returns its id and tracking URI ({} without)."""
    for logger in trainer.loggers:
        run_id = getattr(logger, "run_id", None)
        if run_id:
            for path in paths:
                logger.experiment.log_artifact(run_id, str(path))
            return {"run_id": run_id, "tracking_uri": default_uri()}  # `mlflow_loggers`' store
    return {}


# Lightning's lines that say nothing about this run, in every training log: its device summary
# (the startup line and the manifest say where the run ran), and its advertising tips.
QUIET_LIGHTNING_INFO = ("GPU available:", "TPU available:", "HPU available:", "💡 Tip:")
# Warnings this code cannot act on: a resumed run's checkpoint directory holds its checkpoints
# by design; lightning 2.6's own pytree code meets torch 2.13's LeafSpec deprecation.
QUIET_WARNINGS = (
    r"Checkpoint directory .* exists and is not empty",
    r"`isinstance\(treespec, LeafSpec\)` is deprecated",
)


class _DropLines(logging.Filter):
    def __init__(self, prefixes: tuple[str, ...]):
        super().__init__()
        self.prefixes = prefixes

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.prefixes)


def quiet_lightning() -> None:
    """Drop Lightning's device summary and tips and the warnings in `QUIET_WARNINGS` from this
    training process's output (once; everything else Lightning says stays)."""
    log = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    if not any(isinstance(f, _DropLines) for f in log.filters):
        log.addFilter(_DropLines(QUIET_LIGHTNING_INFO))
    for message in QUIET_WARNINGS:
        warnings.filterwarnings("ignore", message=message)


def build_trainer(
    cfg: TrainingConfig, out_dir: Path, callbacks: list[L.Callback], loggers: list
) -> L.Trainer:
    quiet_lightning()
    bar_refresh = 1 if sys.stderr.isatty() else cfg.log_interval * cfg.grad_accum
    extra = [RunProgressBar(refresh_rate=bar_refresh)] if cfg.progress_bar else []
    # FSDP writes its own (sharded) checkpoints and does not use a CheckpointIO plugin.
    plugins = [] if cfg.strategy == "fsdp" else [AtomicCheckpointIO()]
    # Under FSDP2 bf16 comes from the sharding's mixed-precision policy (module.py), not autocast.
    fsdp_bf16 = cfg.strategy == "fsdp" and cfg.precision == "bf16-mixed"
    return L.Trainer(
        accelerator=cfg.accelerator,
        devices=cfg.devices,
        num_nodes=cfg.num_nodes,
        strategy=build_strategy(cfg),
        precision="32-true" if fsdp_bf16 else cfg.precision,
        max_steps=cfg.max_steps,
        accumulate_grad_batches=cfg.grad_accum,
        gradient_clip_val=cfg.grad_clip or None,
        gradient_clip_algorithm="norm",
        val_check_interval=cfg.val_interval * cfg.grad_accum,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=0,
        log_every_n_steps=cfg.log_interval,
        logger=loggers or False,
        callbacks=[*callbacks, *checkpoint_callbacks(cfg, out_dir), *extra],
        enable_progress_bar=cfg.progress_bar,
        enable_model_summary=False,
        use_distributed_sampler=False,  # PretrainDataModule shards the data across ranks itself
        plugins=plugins,
        default_root_dir=out_dir,
    )


def full_state_dict(trainer: L.Trainer) -> dict[str, torch.Tensor]:
    """The whole model's weights, complete on rank 0 (under FSDP a collective: all ranks call)."""
    strategy = trainer.strategy
    if not isinstance(strategy, ModelParallelStrategy):
        return strategy.lightning_module_state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    # Gathered block by block into rank 0's CPU memory, whatever the checkpoint format is.
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_model_state_dict(strategy.lightning_module, options=options)


def replica_checksums(trainer: L.Trainer, model: torch.nn.Module) -> list[str]:
    """sha256 of each rank's weights, gathered on every rank: DDP replicas must be identical."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().flatten().view(torch.uint8).numpy())
    device = trainer.strategy.root_device
    local = torch.tensor(list(digest.digest()), dtype=torch.int64, device=device)  # (32,)
    gathered = trainer.strategy.all_gather(local).reshape(-1, 32)  # (world, 32)
    return [bytes(row.tolist()).hex() for row in gathered.cpu()]
