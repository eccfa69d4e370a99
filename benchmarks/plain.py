"""The plain PyTorch training loop the pretraining benchmarks measure lmpipe against.

The demo model, the pipeline's own dataset, seeded sampler and document-masking collate
(`pipeline.pretrain.run.token_data`), AdamW with the warmup + cosine schedule
(`pipeline.pretrain.module.build_optimizer`), gradient accumulation, clipping and the config's
precision: what lmpipe's Lightning run does, without Lightning, MLflow or checkpoints. Light on
imports on purpose: `benchmarks/startup.py` counts this module's start-up.
"""

from __future__ import annotations

from pathlib import Path

import torch

from pipeline.model import DecoderLM
from pipeline.pretrain.metrics import COMPUTE_DTYPE
from pipeline.pretrain.module import build_optimizer, next_token_loss
from pipeline.pretrain.run import token_data


class PlainLoop:
    """`cfg` (a `PretrainConfig`) trained on `<tokenize_dir>/{train,val}`, a `step()` at a time."""

    def __init__(self, cfg, tokenize_dir: Path):
        self.cfg = cfg
        _, model_cfg, self.data = token_data(cfg, tokenize_dir)
        torch.manual_seed(cfg.seed)
        self.model = DecoderLM(model_cfg)
        self.opt, self.sched = build_optimizer(self.model.named_parameters(), cfg)
        self.batches = iter(self.data.train_dataloader())
        self.dtype = COMPUTE_DTYPE.get(cfg.precision)
        self.tokens_per_step = cfg.micro_batch_size * cfg.grad_accum * model_cfg.block_size

    def loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with torch.autocast("cpu", dtype=self.dtype, enabled=self.dtype is not None):
            logits = self.model(batch["input_ids"], batch.get("positions"), batch.get("doc_ids"))
        return next_token_loss(logits, batch["labels"])

    def step(self) -> None:
        """One optimizer step over `grad_accum` micro-batches."""
        accum = self.cfg.grad_accum
        for _ in range(accum):
            (self.loss(next(self.batches)) / accum).backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        self.sched.step()

    @torch.no_grad()
    def val_loss(self) -> float:
        """Mean loss over the validation batches."""
        self.model.eval()
        losses = [self.loss(b) for b in self.data.val_dataloader()]
        self.model.train()
        return torch.stack(losses).mean().item()
