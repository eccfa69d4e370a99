"""Fine-tuning in Lightning: masked samples in batches, the pretrained model, optional LoRA.

`FinetuneModule` is `PretrainModule` (same loss, AdamW groups, warmup + cosine schedule) with
the pretrained weights loaded and, for LoRA, peft adapters on the attention and MLP projections
(every other weight frozen). Validation reports the token-weighted mean response loss.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, ClassVar

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from pipeline.finetune.config import FinetuneConfig
from pipeline.finetune.data import read_split
from pipeline.model import DecoderLM, load_model
from pipeline.pretrain.data import ResumableBatchSampler, ValidationBatchSampler
from pipeline.pretrain.module import PretrainModule, compile_blocks

IGNORE = -100  # F.cross_entropy's default ignore_index: prompt and padding carry no loss


class MaskedSamples(Dataset):
    """Samples of one split as (input_ids, labels), each (T,): labels are IGNORE on prompt
    tokens and padding. Every sample is padded to the context length T."""

    def __init__(self, ids: list[list[int]], trained: list[list[bool]], T: int, pad_id: int):
        self.ids, self.trained, self.T, self.pad_id = ids, trained, T, pad_id

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return masked_example(self.ids[i], self.trained[i], self.T, self.pad_id)


def masked_example(
    ids: list[int], trained: list[bool], T: int, pad_id: int
) -> tuple[torch.Tensor, torch.Tensor]:  # (T,), (T,)
    """Inputs are ids[:-1], targets ids[1:]; a target counts only where it is response."""
    n = len(ids) - 1
    x = torch.full((T,), pad_id, dtype=torch.long)
    y = torch.full((T,), IGNORE, dtype=torch.long)
    x[:n] = torch.tensor(ids[:-1])
    target = torch.tensor(ids[1:])
    y[:n] = torch.where(torch.tensor(trained[1:]), target, torch.full_like(target, IGNORE))
    return x, y


def collate(examples: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {
        "input_ids": torch.stack([x for x, _ in examples]),  # (B, T)
        "labels": torch.stack([y for _, y in examples]),  # (B, T)
    }


class FinetuneDataModule(L.LightningDataModule):
    """Loaders over `<stage>/data/{train,val}.arrow`; its state is the data position."""

    def __init__(
        self,
        stage_dir: Path,
        T: int,
        pad_id: int,
        micro: int,
        accum: int,
        seed: int,
        val_batches: int,
    ):
        super().__init__()
        self.micro, self.accum, self.seed, self.val_batches = micro, accum, seed, val_batches
        self.train = MaskedSamples(*read_split(stage_dir, "train"), T, pad_id)
        self.val = MaskedSamples(*read_split(stage_dir, "val"), T, pad_id)
        if len(self.train) == 0 or len(self.val) == 0:
            raise ValueError(
                f"fine-tuning needs train and validation samples, got {len(self.train)} and "
                f"{len(self.val)}: check `finetune.data` and `finetune.val_fraction`"
            )
        self.start_sample = 0

    def _world(self) -> tuple[int, int]:
        t = self.trainer
        return (t.global_rank, t.world_size) if t else (0, 1)

    def train_dataloader(self) -> DataLoader:
        rank, world = self._world()
        sampler = ResumableBatchSampler(
            len(self.train), self.micro, rank, world, self.seed, self.start_sample
        )
        return DataLoader(self.train, batch_sampler=sampler, collate_fn=collate)

    def val_dataloader(self) -> DataLoader:
        rank, world = self._world()
        micro = max(1, min(self.micro, len(self.val) // world))  # a small val split validates
        sampler = ValidationBatchSampler(len(self.val), micro, self.val_batches, rank, world)
        return DataLoader(self.val, batch_sampler=sampler, collate_fn=collate)

    def state_dict(self) -> dict[str, Any]:
        step = self.trainer.global_step if self.trainer else 0
        consumed = step * self.micro * self.accum * self._world()[1]
        return {"consumed_samples": consumed, "seed": self.seed, "train_samples": len(self.train)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["seed"] != self.seed or state["train_samples"] != len(self.train):
            raise ValueError("the fine-tuning data or seed changed since the checkpoint")
        self.start_sample = int(state["consumed_samples"])


def add_lora(model: DecoderLM, lora: dict[str, Any], seed: int) -> torch.nn.Module:
    """`model` with peft LoRA adapters (B = 0 at init, so training starts at the base model)."""
    from peft import LoraConfig, LoraModel

    torch.manual_seed(seed)  # the same A init on every rank and every run
    config = LoraConfig(
        r=lora["r"],
        lora_alpha=lora["alpha"],
        lora_dropout=lora["dropout"],
        target_modules=list(lora["targets"]),
        bias="none",
    )
    return LoraModel(model, config, "default")


def merged_model(model: torch.nn.Module) -> DecoderLM:
    """A plain `DecoderLM` for serving: LoRA updates folded into the weights (on a copy)."""
    if isinstance(model, DecoderLM):
        return model
    return copy.deepcopy(model).merge_and_unload()


class FinetuneModule(PretrainModule):
    """`PretrainModule` starting from `weights_dir`, with LoRA adapters when `lora` is given."""

    config_type: ClassVar[type[FinetuneConfig]] = FinetuneConfig

    def __init__(
        self,
        train_cfg: dict[str, Any],
        model_cfg: dict[str, Any],
        weights_dir: str,
        lora: dict[str, Any] | None = None,
    ):
        super().__init__(train_cfg, model_cfg)
        self.model = load_model(Path(weights_dir))
        if lora is not None:
            self.model = add_lora(self.model, lora, self.cfg.seed)
        if self.cfg.compile:  # the blocks of the loaded model (adapters included), not the stub's
            compile_blocks(self.model)
        self._val_sums: list[torch.Tensor] = []

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        logits = self(batch)  # (B, T, V)
        loss = torch.nn.functional.cross_entropy(
            logits.flatten(0, 1).float(), batch["labels"].flatten(), reduction="sum"
        )
        count = (batch["labels"] != IGNORE).sum()
        self._val_sums.append(torch.stack([loss.detach(), count.to(loss.dtype)]))

    def on_validation_epoch_end(self) -> None:
        local = torch.stack(self._val_sums).sum(dim=0)  # (2,) loss sum, target count
        self._val_sums.clear()
        total = self.trainer.strategy.reduce(local, reduce_op="sum")
        val_loss = total[0] / total[1].clamp(min=1)  # token-weighted over every rank
        self.log("val/loss", val_loss, prog_bar=True, sync_dist=True)
        self.log("val/ppl", torch.exp(val_loss), sync_dist=True)
