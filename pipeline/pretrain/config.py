"""Training configuration: the parts pretraining and fine-tuning share, and the `pretrain` section.

A stage's section stays one flat mapping (`pretrain.lr`, `finetune.devices`), built from four
parts defined once here: `LoopSettings`, `OptimizerSettings`, `ParallelSettings` and
`TrackingSettings`, joined in `TrainingConfig` (litgpt's `TrainArgs`, torchtitan's component
configs). The trainer builder, the lr schedule, the metrics monitor and the MLflow logger read a
`TrainingConfig`, so `PretrainConfig` and `FinetuneConfig` reach them unchanged.

The parts carry pretraining's defaults. A stage gives a field its own default by redeclaring it
with the field's type alias below (`lr: PeakLr = 1e-3`): pydantic replaces a redeclared field
whole, and the alias brings its bounds and description along.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, model_validator

from pipeline.core.base_config import StrictModel, config_hash
from pipeline.model.config import ModelConfig

MaxSteps = Annotated[
    int,
    Field(
        ge=1,
        description="Optimizer steps to train for (a pretraining rerun with more steps resumes "
        "from its last checkpoint).",
    ),
]
PeakLr = Annotated[float, Field(gt=0, description="Peak learning rate (after warmup).")]
MinLr = Annotated[float, Field(ge=0, description="Learning rate at the end of the cosine decay.")]
WarmupSteps = Annotated[
    int,
    Field(
        ge=0,
        description="Linear warmup from 0 to `lr` over this many steps, then cosine decay to "
        "`min_lr` (a run shorter than its warmup only warms up).",
    ),
]
WeightDecay = Annotated[
    float,
    Field(ge=0, description="AdamW decoupled weight decay, applied to matrices only (not norms)."),
]
Betas = Annotated[tuple[float, float], Field(description="AdamW betas.")]
Experiment = Annotated[str, Field(description="MLflow experiment name.")]


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


class SectionPart(StrictModel):
    """A part of a training section; `section` names it in error messages (`pretrain.lr`)."""

    section: ClassVar[str] = "pretrain"


class LoopSettings(SectionPart):
    """The training loop: batches, steps, and how often it validates, saves and logs."""

    seed: int = 1337
    """Seed of the init (weights or adapters) and of the data order (same seed, same batches)."""
    micro_batch_size: int = Field(8, ge=1)
    """Sequences per device per forward pass."""
    grad_accum: int = Field(1, ge=1)
    """Micro-batches accumulated before an optimizer step."""
    max_steps: MaxSteps = 300
    val_interval: int = Field(50, ge=1)
    """Run validation every this many optimizer steps (and at the end)."""
    val_batches: int = Field(8, ge=1)
    """Micro-batches per device in each validation (the same held-out batches every time)."""
    checkpoint_interval: int = Field(50, ge=1)
    """Save `checkpoints/last.ckpt` every this many optimizer steps."""
    log_interval: int = Field(10, ge=1)
    """Log loss, learning rate, tokens/s and MFU every this many optimizer steps."""


class OptimizerSettings(SectionPart):
    """AdamW with linear warmup, cosine decay and gradient clipping."""

    lr: PeakLr = 3e-3
    min_lr: MinLr = 3e-4
    warmup_steps: WarmupSteps = 30
    weight_decay: WeightDecay = 0.1
    betas: Betas = (0.9, 0.95)
    grad_clip: float = Field(1.0, ge=0)
    """Clip the global gradient norm to this value; 0 = no clipping."""

    @model_validator(mode="after")
    def _check_lr(self) -> OptimizerSettings:
        if self.min_lr > self.lr:
            raise ValueError(f"`{self.section}.min_lr` must not exceed `{self.section}.lr`")
        return self


class ParallelSettings(SectionPart):
    """Devices, precision, the parallelism strategy, and how the training processes start."""

    precision: Literal["32-true", "bf16-mixed", "16-mixed", "bf16-true"] = "32-true"
    """Lightning precision: 32-true on CPU, bf16-mixed on Ampere or newer GPUs."""
    accelerator: Literal["auto", "cpu", "gpu", "cuda"] = "auto"
    """Device type."""
    devices: int | Literal["auto"] = 1
    """Devices (GPUs or CPU processes) per node."""
    num_nodes: int = Field(1, ge=1)
    """Nodes; multi-node runs start through torchrun or SLURM (see `launcher`)."""
    strategy: Literal["auto", "ddp", "fsdp"] = "auto"
    """Lightning strategy: auto (one device), ddp (replicas) or fsdp (FSDP2, sharded)."""
    fsdp: FSDPConfig = Field(default_factory=FSDPConfig)
    """FSDP settings (when `strategy` is `fsdp`)."""
    compile: bool = False
    """Compile each transformer block with torch.compile."""
    launcher: Literal["python", "torchrun", "srun"] = "python"
    """How the Prefect task starts training: one python process, torchrun, or SLURM's srun."""
    launcher_args: list[str] = Field(default_factory=list)
    """Extra launcher arguments, e.g. ["--nnodes=2", "--nproc-per-node=8"] for torchrun."""
    time_limit_minutes: float = Field(0.0, ge=0)
    """The Prefect task kills the training process group after this long; 0 = no limit."""

    @model_validator(mode="after")
    def _check_launcher(self) -> ParallelSettings:
        if self.num_nodes > 1 and self.launcher == "python":
            # One python process starts only this node's ranks; the others would wait forever.
            raise ValueError(
                f"`{self.section}.num_nodes` is {self.num_nodes}: set `{self.section}.launcher` "
                "to torchrun or srun, which start the ranks of every node"
            )
        return self


class TrackingSettings(SectionPart):
    """Where metrics go: MLflow, the console, and the peak FLOP/s that MFU is measured against."""

    mlflow: bool = True
    """Log to MLflow (MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the working directory)."""
    mlflow_experiment: Experiment = "lmpipe-pretrain"
    mlflow_parent_run_id: str = ""
    """Nest the MLflow run under this run (tag `mlflow.parentRunId`; the scaling flow sets it)."""
    progress_bar: bool = True
    """Show Lightning's progress bar on the console."""
    peak_flops_per_device: float = Field(0.0, ge=0)
    """Peak FLOP/s of one device for MFU; 0 = look it up from the device type (see metrics.py)."""


class TrainingConfig(TrackingSettings, ParallelSettings, OptimizerSettings, LoopSettings):
    """What every training stage has: loop, optimizer, devices and parallelism, tracking."""

    # Fields that change how a run is launched or shown, not what it computes.
    operational_fields: ClassVar[tuple[str, ...]] = (
        "progress_bar",
        "launcher",
        "launcher_args",
        "time_limit_minutes",
        "mlflow",
        "mlflow_experiment",
        "mlflow_parent_run_id",
        "peak_flops_per_device",
    )


class PretrainConfig(TrainingConfig):
    """How the model is pretrained on the token shards of `<run>/tokenize/`."""

    section: ClassVar[str] = "pretrain"
    operational_fields: ClassVar[tuple[str, ...]] = (
        *TrainingConfig.operational_fields,
        "num_workers",
    )

    model: ModelConfig = Field(default_factory=ModelConfig)
    """The network (sizes, RoPE, tying)."""
    document_masking: bool = True
    """Tokens of a packed sequence attend only within their own document (split at EOD)."""
    masked_attention: Literal["sdpa", "flex"] = "sdpa"
    """Kernel of a batch with document boundaries when flash-attn's varlen kernel cannot run
    (not installed, not CUDA, not bf16/fp16): sdpa, SDPA with a dense (B, 1, T, T) mask; flex,
    torch's flex_attention with a document block mask (GPU only for training: torch has no CPU
    backward for it). Batches without a boundary take SDPA's causal kernel either way."""
    num_workers: int = Field(0, ge=0)
    """DataLoader worker processes per device (0 = load in the training process)."""

    @model_validator(mode="after")
    def _check_masked_attention(self) -> PretrainConfig:
        if self.masked_attention == "flex" and self.document_masking and self.accelerator == "cpu":
            raise ValueError(
                "`pretrain.masked_attention: flex` cannot train on the CPU (torch's flex_attention "
                "has no CPU backward): use sdpa there"
            )
        return self


# Fields a checkpoint can be resumed under when they change: more steps continue the run, and
# torch.distributed.checkpoint reshards model and optimizer onto another number of ranks (the
# data position is counted in global samples, see `PretrainDataModule.state_dict`).
RESUMABLE_FIELDS = ("max_steps", "devices", "num_nodes")


def training_config_hash(cfg: TrainingConfig) -> str:
    """Hash of what determines the trained weights (launch and display settings excluded)."""
    return config_hash(cfg.model_copy(update=dict.fromkeys(cfg.operational_fields)))


def resume_config_hash(cfg: TrainingConfig) -> str:
    """Hash of what a checkpoint must share with the config to be resumed."""
    skipped = cfg.operational_fields + RESUMABLE_FIELDS
    return config_hash(cfg.model_copy(update=dict.fromkeys(skipped)))
