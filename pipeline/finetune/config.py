"""Configuration of supervised fine-tuning (full or LoRA) from the pretrained weights."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from pipeline.base_config import StrictModel, config_hash
from pipeline.model.config import ModelConfig
from pipeline.train.config import FSDPConfig, PretrainConfig

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class LoraSettings(StrictModel):
    """Low-rank adapters (Hu et al. 2021) through peft; merged into the weights after training."""

    r: int = Field(8, ge=1)
    """Rank of each adapter (the inner width of B @ A)."""
    alpha: float = Field(16.0, gt=0)
    """Scaling numerator: the adapter's update is multiplied by alpha / r."""
    dropout: float = Field(0.0, ge=0.0, lt=1.0)
    """Dropout on the adapter's input during training."""
    targets: list[str] = Field(default_factory=lambda: list(LORA_TARGETS))
    """Module names that get adapters: the attention and MLP projections by default."""


class FinetuneConfig(StrictModel):
    """How the pretrained model is fine-tuned on instruction data (`<run>/finetune/`)."""

    data: str = "data/sample/python-docs-instructions.jsonl"
    """Instruction data, JSONL: {"instruction", "input"?, "output"} or {"messages": [...]}."""
    method: Literal["full", "lora"] = "lora"
    """Train every weight (full) or low-rank adapters only (lora, merged after training)."""
    lora: LoraSettings = Field(default_factory=LoraSettings)
    """LoRA settings (when `method` is lora)."""
    min_response_tokens: int = Field(8, ge=1)
    """A too-long sample is cut to fit if this many response tokens remain, else rejected."""
    val_fraction: float = Field(0.1, gt=0.0, lt=1.0)
    """Share of samples in the validation split, chosen by a hash of the sample id."""
    seed: int = 1337
    """Seed of the adapter init and of the sample order."""
    micro_batch_size: int = Field(8, ge=1)
    """Samples per device per forward pass."""
    grad_accum: int = Field(1, ge=1)
    """Micro-batches accumulated before an optimizer step."""
    max_steps: int = Field(200, ge=1)
    """Optimizer steps to train for."""
    lr: float = Field(1e-3, gt=0)
    """Peak learning rate (LoRA takes larger rates than full fine-tuning)."""
    min_lr: float = Field(1e-4, ge=0)
    """Learning rate at the end of the cosine decay."""
    warmup_steps: int = Field(10, ge=0)
    """Linear warmup from 0 to `lr` over this many steps, then cosine decay to `min_lr`."""
    weight_decay: float = Field(0.0, ge=0)
    """AdamW decoupled weight decay (matrices only)."""
    grad_clip: float = Field(1.0, ge=0)
    """Clip the global gradient norm to this value; 0 = no clipping."""
    precision: Literal["32-true", "bf16-mixed", "16-mixed", "bf16-true"] = "32-true"
    """Lightning precision: 32-true on CPU, bf16-mixed on Ampere or newer GPUs."""
    accelerator: Literal["auto", "cpu", "gpu", "cuda"] = "auto"
    """Device type."""
    devices: int | Literal["auto"] = 1
    """Devices (GPUs or CPU processes) per node."""
    num_nodes: int = Field(1, ge=1)
    """Nodes; multi-node runs start through torchrun or SLURM (see `launcher`)."""
    launcher: Literal["python", "torchrun", "srun"] = "python"
    """How the Prefect task starts fine-tuning: one python process, torchrun, or SLURM's srun."""
    launcher_args: list[str] = Field(default_factory=list)
    """Extra launcher arguments, e.g. ["--nnodes=2", "--nproc-per-node=8"] for torchrun."""
    strategy: Literal["auto", "ddp", "fsdp"] = "auto"
    """Lightning strategy: auto (one device), ddp (replicas) or fsdp (FSDP2, full or LoRA)."""
    fsdp: FSDPConfig = Field(default_factory=FSDPConfig)
    """FSDP settings (when `strategy` is `fsdp`)."""
    val_interval: int = Field(50, ge=1)
    """Validate (response loss on the validation split) every this many steps and at the end."""
    val_batches: int = Field(8, ge=1)
    """Micro-batches per device in each validation."""
    checkpoint_interval: int = Field(50, ge=1)
    """Save `checkpoints/last.ckpt` every this many optimizer steps."""
    log_interval: int = Field(10, ge=1)
    """Log loss, learning rate and tokens/s every this many optimizer steps."""
    mlflow: bool = True
    """Log to MLflow (MLFLOW_TRACKING_URI, else sqlite:///mlflow.db in the working directory)."""
    mlflow_experiment: str = "lmpipe-finetune"
    """MLflow experiment name."""
    progress_bar: bool = True
    """Show Lightning's progress bar on the console."""
    time_limit_minutes: float = Field(0.0, ge=0)
    """The Prefect task kills the fine-tuning process after this long; 0 = no limit."""

    @model_validator(mode="after")
    def _check(self) -> FinetuneConfig:
        if self.min_lr > self.lr:
            raise ValueError("`finetune.min_lr` must not exceed `finetune.lr`")
        if self.num_nodes > 1 and self.launcher == "python":
            # One python process starts only this node's ranks; the others would wait forever.
            raise ValueError(
                f"`finetune.num_nodes` is {self.num_nodes}: set `finetune.launcher` to torchrun "
                "or srun, which start the ranks of every node"
            )
        if self.warmup_steps >= self.max_steps:
            raise ValueError("`finetune.warmup_steps` must be smaller than `finetune.max_steps`")
        return self

    def trainer_config(self, model: ModelConfig) -> PretrainConfig:
        """The same settings as a `PretrainConfig`: the Lightning trainer builder, the MLflow
        logger, the metrics monitor and the lr schedule of `pipeline.train` read that type."""
        shared = set(PretrainConfig.model_fields) & set(FinetuneConfig.model_fields)
        values = {name: getattr(self, name) for name in shared}
        return PretrainConfig(
            **values, model=model, betas=(0.9, 0.999), document_masking=False, compile=False
        )


# Fields that change how a run is launched or shown, not what it computes.
OPERATIONAL_FIELDS = (
    "progress_bar",
    "time_limit_minutes",
    "mlflow",
    "mlflow_experiment",
    "launcher",
    "launcher_args",
)


def finetune_config_hash(cfg: FinetuneConfig) -> str:
    """Hash of what determines the fine-tuned weights (launch and display settings excluded)."""
    return config_hash(cfg.model_copy(update=dict.fromkeys(OPERATIONAL_FIELDS)))
