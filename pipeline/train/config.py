"""Configuration of the pretraining stage: the model, the optimiser, the devices, the logging."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipeline.base_config import StrictModel, config_hash
from pipeline.model.config import ModelConfig


class FSDPConfig(StrictModel):
    """FSDP2 settings (`fully_shard` per transformer block; used when `strategy` is `fsdp`)."""

    sharding_strategy: Literal["FULL_SHARD", "SHARD_GRAD_OP", "HYBRID_SHARD"] = "FULL_SHARD"
    """FULL_SHARD: shard over all ranks; SHARD_GRAD_OP: keep gathered params from forward to
    backward; HYBRID_SHARD: shard within a node, replicate across nodes."""
    activation_checkpointing: bool = False
    """Recompute each transformer block's activations in the backward pass (less memory)."""
    cpu_offload: bool = False
    """Keep sharded parameters, gradients and optimizer state on the CPU (slow; huge models)."""
    state_dict_type: Literal["full", "sharded"] = "sharded"
    """Checkpoint format: one shard file per rank (torch.distributed.checkpoint) or one full
    file gathered on rank 0."""


class PretrainConfig(StrictModel):
    """How the model is pretrained on the token shards of `<run>/tokenize/`."""

    model: ModelConfig = Field(default_factory=ModelConfig)
    """The network (sizes, RoPE, tying)."""
    seed: int = 1337
    """Seed of the weight init and of the data order (the same seed gives the same batches)."""
    micro_batch_size: int = Field(8, ge=1)
    """Sequences per device per forward pass."""
    grad_accum: int = Field(1, ge=1)
    """Micro-batches accumulated before an optimizer step."""
    max_steps: int = Field(300, ge=1)
    """Optimizer steps to train for; a rerun with more steps resumes from the last checkpoint."""
    lr: float = Field(3e-3, gt=0)
    """Peak learning rate (after warmup)."""
    min_lr: float = Field(3e-4, ge=0)
    """Learning rate at the end of the cosine decay."""
    warmup_steps: int = Field(30, ge=0)
    """Linear warmup from 0 to `lr` over this many steps, then cosine decay to `min_lr` (a run
    shorter than its warmup only warms up)."""
    weight_decay: float = Field(0.1, ge=0)
    """AdamW decoupled weight decay, applied to matrices only (not norms)."""
    betas: tuple[float, float] = (0.9, 0.95)
    """AdamW betas."""
    grad_clip: float = Field(1.0, ge=0)
    """Clip the global gradient norm to this value; 0 = no clipping."""
    document_masking: bool = True
    """Tokens of a packed sequence attend only within their own document (split at EOD)."""
    precision: Literal["32-true", "bf16-mixed", "16-mixed", "bf16-true"] = "32-true"
    """Lightning precision: 32-true on CPU, bf16-mixed on Ampere or newer GPUs."""
    accelerator: Literal["auto", "cpu", "gpu", "cuda"] = "auto"
    """Device type."""
    devices: int | Literal["auto"] = 1
    """Devices (GPUs or CPU processes) per node."""
    num_nodes: int = Field(1, ge=1)
    """Nodes; multi-node runs start through torchrun or SLURM (see `launcher`)."""
    strategy: Literal["auto", "ddp", "fsdp"] = "auto"
    """Lightning strategy: auto (one device), ddp (replicas) or fsdp (sharded)."""
    fsdp: FSDPConfig = Field(default_factory=FSDPConfig)
    """FSDP settings (when `strategy` is `fsdp`)."""
    compile: bool = False
    """Compile the model with torch.compile."""
    val_interval: int = Field(50, ge=1)
    """Run validation every this many optimizer steps (and at the end)."""
    val_batches: int = Field(8, ge=1)
    """Micro-batches per device in each validation (the same held-out windows every time)."""
    checkpoint_interval: int = Field(50, ge=1)
    """Save `checkpoints/last.ckpt` every this many optimizer steps."""
    log_interval: int = Field(10, ge=1)
    """Log loss, learning rate, tokens/s and MFU every this many optimizer steps."""
    num_workers: int = Field(0, ge=0)
    """DataLoader worker processes per device (0 = load in the training process)."""
    peak_flops_per_device: float = Field(0.0, ge=0)
    """Peak FLOP/s of one device for MFU; 0 = look it up from the device type (see metrics.py)."""
    mlflow: bool = True
    """Log to MLflow (MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the working directory)."""
    mlflow_experiment: str = "lmpipe-pretrain"
    """MLflow experiment name."""
    mlflow_parent_run_id: str = ""
    """Nest the MLflow run under this run (tag `mlflow.parentRunId`; the scaling flow sets it)."""
    progress_bar: bool = True
    """Show Lightning's progress bar on the console."""
    launcher: Literal["python", "torchrun", "srun"] = "python"
    """How the Prefect task starts training: one python process, torchrun, or SLURM's srun."""
    launcher_args: list[str] = Field(default_factory=list)
    """Extra launcher arguments, e.g. ["--nnodes=2", "--nproc-per-node=8"] for torchrun."""
    time_limit_minutes: float = Field(0.0, ge=0)
    """The Prefect task kills the training process group after this long; 0 = no limit."""

    @model_validator(mode="after")
    def _check(self) -> PretrainConfig:
        if self.min_lr > self.lr:
            raise ValueError("`pretrain.min_lr` must not exceed `pretrain.lr`")
        if self.num_nodes > 1 and self.launcher == "python":
            # One python process starts only this node's ranks; the others would wait forever.
            raise ValueError(
                f"`pretrain.num_nodes` is {self.num_nodes}: set `pretrain.launcher` to torchrun "
                "or srun, which start the ranks of every node"
            )
        return self


# Fields that change how a run is launched or shown, not what it computes.
OPERATIONAL_FIELDS = (
    "progress_bar",
    "launcher",
    "launcher_args",
    "time_limit_minutes",
    "num_workers",
    "mlflow",
    "mlflow_experiment",
    "mlflow_parent_run_id",
    "peak_flops_per_device",
)


# Fields a checkpoint can be resumed under when they change: more steps continue the run, and
# torch.distributed.checkpoint reshards model and optimizer onto another number of ranks (the
# data position is counted in global samples, see `PretrainDataModule.state_dict`).
RESUMABLE_FIELDS = ("max_steps", "devices", "num_nodes")


def training_config_hash(cfg: PretrainConfig) -> str:
    """Hash of what determines the trained weights (launch and display settings excluded)."""
    return config_hash(cfg.model_copy(update=dict.fromkeys(OPERATIONAL_FIELDS)))


def resume_config_hash(cfg: PretrainConfig) -> str:
    """Hash of what a checkpoint must share with the config to be resumed."""
    return config_hash(cfg.model_copy(update=dict.fromkeys(OPERATIONAL_FIELDS + RESUMABLE_FIELDS)))
