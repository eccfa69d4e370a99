"""The LightningModule: next-token cross-entropy, AdamW, linear warmup then cosine decay."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, ClassVar

import lightning as L
import torch
import torch.nn.functional as F

from pipeline.model import DecoderLayer, DecoderLM, ModelConfig
from pipeline.pretrain.config import PretrainConfig, TrainingConfig


def lr_at(step: int, cfg: TrainingConfig) -> float:
    """Linear warmup to `lr` over `warmup_steps`, then cosine decay to `min_lr` at `max_steps`."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / (cfg.warmup_steps + 1)
    progress = min(1.0, (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps))
    return cfg.min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (cfg.lr - cfg.min_lr)


def build_optimizer(
    named_parameters: Iterable[tuple[str, torch.nn.Parameter]], cfg: Any
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW over the trainable parameters and the `lr_at` schedule (warm-up, then cosine).

    Decay matrices only; norm gains are not regularised (nanoGPT, Llama). By name, not by
    p.dim(): FSDP hands the optimizer flattened 1-D shards of every parameter."""
    named = [(n, p) for n, p in named_parameters if p.requires_grad]
    groups = [
        {
            "params": [p for n, p in named if not n.endswith("norm.weight")],
            "weight_decay": cfg.weight_decay,
        },
        {"params": [p for n, p in named if n.endswith("norm.weight")], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=cfg.lr, betas=cfg.betas)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_at(step, cfg) / cfg.lr)
    return optimizer, scheduler


def next_token_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    # logits (B, T, V), labels (B, T); the softmax in fp32 even under bf16 autocast
    return F.cross_entropy(logits.flatten(0, 1).float(), labels.flatten())


def _is_sharded(model: torch.nn.Module) -> bool:
    from torch.distributed.fsdp import FSDPModule

    return isinstance(model, FSDPModule)


def shard_model(model: torch.nn.Module, cfg: TrainingConfig, mesh) -> None:
    """FSDP2 the torchtitan way: one `fully_shard` unit per block, then the root.

    Each block gathers its parameters just before use and frees them after, so one block's
    full weights are live at a time. The root unit holds the embedding, final norm and head
    (tied or not); `model` may be a peft LoRA wrapper of a `DecoderLM`: FSDP2 shards frozen
    base weights and trainable adapters in the same unit. bf16 parameters with fp32 gradient
    reduction on GPUs only: CPUs train in fp32.
    `mesh` is Lightning's (data_parallel, tensor_parallel) mesh: 1-D on the shard axis, or both
    axes (replicate, shard) for HYBRID_SHARD.
    """
    from torch.distributed.fsdp import CPUOffloadPolicy, MixedPrecisionPolicy, fully_shard

    fsdp = cfg.fsdp
    hybrid = fsdp.sharding_strategy == "HYBRID_SHARD"
    kwargs: dict[str, Any] = {"mesh": mesh if hybrid else mesh["tensor_parallel"]}
    if cfg.precision == "bf16-mixed" and mesh.device_type == "cuda":
        kwargs["mp_policy"] = MixedPrecisionPolicy(torch.bfloat16, reduce_dtype=torch.float32)
    if fsdp.cpu_offload:
        kwargs["offload_policy"] = CPUOffloadPolicy()
    # SHARD_GRAD_OP keeps gathered block parameters from forward to backward (fewer gathers).
    reshard = fsdp.sharding_strategy != "SHARD_GRAD_OP"
    for layer in [m for m in model.modules() if isinstance(m, DecoderLayer)]:
        layer.activation_checkpointing = fsdp.activation_checkpointing
        fully_shard(layer, reshard_after_forward=reshard, **kwargs)
    fully_shard(model, **kwargs)


def compile_blocks(model: torch.nn.Module) -> None:
    """torch.compile each transformer block (torchtitan's choice: FSDP wraps blocks, and
    parameter names stay unprefixed); `model` may be a peft LoRA wrapper of a `DecoderLM`."""
    for layer in [m for m in model.modules() if isinstance(m, DecoderLayer)]:
        layer.compile()


class PretrainModule(L.LightningModule):
    """Wraps `DecoderLM`; batches come from `PretrainDataModule` (input_ids, labels, doc mask)."""

    config_type: ClassVar[type[TrainingConfig]] = PretrainConfig
    """The config section `train_cfg` is (fine-tuning's module reads a `FinetuneConfig`)."""

    def __init__(self, train_cfg: dict[str, Any], model_cfg: dict[str, Any]):
        super().__init__()
        # Plain dicts: checkpoints hold only tensors and primitives (torch.load weights_only).
        self.save_hyperparameters()
        self.cfg = self.config_type.model_validate(train_cfg)
        torch.manual_seed(self.cfg.seed)  # the same init on every rank and every run
        self.model = DecoderLM(ModelConfig.model_validate(model_cfg))
        if isinstance(self.cfg, PretrainConfig):  # fine-tuning batches have no documents
            self.model.masked_attention = self.cfg.masked_attention
        if self.cfg.compile:
            compile_blocks(self.model)
        self._val_losses: list[torch.Tensor] = []

    def configure_model(self) -> None:
        """Under FSDP (Lightning's ModelParallelStrategy) shard the model: see `shard_model`."""
        if self.cfg.strategy == "fsdp" and not _is_sharded(self.model):
            shard_model(self.model, self.cfg, self.device_mesh)

    def forward(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:  # (B, T, V)
        return self.model(batch["input_ids"], batch.get("positions"), batch.get("doc_ids"))

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> dict[str, Any]:
        loss = next_token_loss(self(batch), batch["labels"])
        self.log("loss", loss.detach(), prog_bar=True, logger=False)
        return {"loss": loss, "micro_loss": loss.detach()}

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._val_losses.append(next_token_loss(self(batch), batch["labels"]).detach())

    def on_validation_epoch_end(self) -> None:
        # Every rank evaluates the same number of equal-sized batches: the mean of means is exact.
        local = torch.stack(self._val_losses).mean()
        self._val_losses.clear()
        val_loss = self.trainer.strategy.reduce(local, reduce_op="mean")
        # Already equal on every rank; sync_dist only keeps Lightning from warning about it.
        self.log("val/loss", val_loss, prog_bar=True, sync_dist=True)
        self.log("val/ppl", torch.exp(val_loss), sync_dist=True)

    def configure_optimizers(self) -> dict[str, Any]:
        optimizer, scheduler = build_optimizer(self.named_parameters(), self.cfg)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
