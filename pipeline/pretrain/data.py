"""Packed training sequences from memory-mapped token shards, in a resumable seeded order.

The tokenize stage writes `<run>/tokenize/{train,val}/shard-NNNNN.arrow`: one uncompressed record
batch with one `tokens` column (uint16/uint32), documents concatenated, each followed by EOD. A
split is read as one stream; window i is tokens [i*T, i*T + T + 1): inputs are its first T
tokens, targets its last T. Windows ignore document boundaries (packing); the collate function
derives the boundaries from EOD so attention can be masked per document.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import pyarrow as pa
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from pipeline.core.shard_io import damaged, first_batch
from pipeline.model.attention import document_positions
from pipeline.pretrain.config import PretrainConfig

SHARD_NAME = re.compile(r"shard-\d+\.arrow$")


def mmap_tokens(path: Path) -> np.ndarray:
    """The `tokens` column of one shard as a zero-copy view of the memory-mapped file; an
    unreadable shard is one line naming it and the stage to rerun (`pipeline/core/shard_io.py`).
    (`pipeline.tokenize.shards.load_token_shard` does the same; importing `pipeline.tokenize` here
    would cost every training process its tokenizer imports.)"""
    batch = first_batch(path)
    column = batch.column(0)
    if batch.schema.names[0] != "tokens" or column.type not in (pa.uint16(), pa.uint32()):
        raise damaged(path, f"expected one uint16/uint32 column `tokens`, got {batch.schema}")
    return column.to_numpy(zero_copy_only=True)


class TokenStream:
    """The token shards of one split, read as one concatenated stream without copying."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self.paths = sorted(
            p for p in self.directory.glob("shard-*.arrow") if SHARD_NAME.match(p.name)
        )
        if not self.paths:
            raise FileNotFoundError(f"no token shards (shard-NNNNN.arrow) in {self.directory}")
        self._open()

    def _open(self) -> None:
        self.arrays = [mmap_tokens(p) for p in self.paths]
        self.offsets = np.cumsum([0] + [len(a) for a in self.arrays])  # (shards + 1,)

    def __getstate__(self) -> dict[str, Any]:
        # DataLoader workers get paths and map the files themselves, never a pickled copy.
        return {"directory": self.directory, "paths": self.paths}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._open()

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def read(self, start: int, n: int) -> np.ndarray:
        """Tokens [start, start + n) of the stream, crossing shard boundaries when needed."""
        shard = int(np.searchsorted(self.offsets, start, side="right")) - 1
        pieces, need, pos = [], n, start - int(self.offsets[shard])
        while need > 0:
            piece = self.arrays[shard][pos : pos + need]
            pieces.append(piece)
            need -= len(piece)
            shard, pos = shard + 1, 0
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)


class PackedWindows(Dataset):
    """Window i of a stream: T + 1 tokens starting at i * T (consecutive windows share a token)."""

    def __init__(self, stream: TokenStream, block_size: int):
        self.stream, self.block_size = stream, block_size
        self.n = (len(stream) - 1) // block_size

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> torch.Tensor:  # (T + 1,) int64
        window = self.stream.read(i * self.block_size, self.block_size + 1)
        return torch.from_numpy(window.astype(np.int64))


class PackedCollate:
    """Stack windows into inputs/labels; add document positions and ids when a row is packed."""

    def __init__(self, eod_id: int | None):
        self.eod_id = eod_id
        """None disables document masking: every row is one causal sequence."""

    def __call__(self, windows: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        seq = torch.stack(windows)  # (B, T + 1)
        batch = {"input_ids": seq[:, :-1], "labels": seq[:, 1:]}  # (B, T) each
        x = batch["input_ids"]
        # An EOD in the last input column starts a document with no tokens here: no boundary.
        if self.eod_id is not None and bool((x[:, :-1] == self.eod_id).any()):
            batch["positions"], batch["doc_ids"] = document_positions(x, self.eod_id)
        return batch


class ResumableBatchSampler(Sampler[list[int]]):
    """One rank's micro-batches of window indices, in a seeded order, from any data position.

    Global sample g is window perm_e[g % n] of epoch e = g // n, perm_e a permutation seeded by
    (seed, e). Micro-step s of rank r reads global samples (s * world + r) * micro + [0, micro).
    Starting at `start_sample` (the samples every rank consumed before) reproduces exactly the
    batches an uninterrupted run would have read. Never ends: the trainer stops at max_steps.
    """

    def __init__(self, n: int, micro: int, rank: int, world: int, seed: int, start_sample: int):
        self.n, self.micro, self.rank, self.world = n, micro, rank, world
        self.seed, self.start_sample = seed, start_sample
        self._epoch, self._perm = -1, np.empty(0, dtype=np.int64)

    def _window(self, g: int) -> int:
        epoch = g // self.n
        if epoch != self._epoch:
            rng = np.random.default_rng([self.seed, epoch])
            self._epoch, self._perm = epoch, rng.permutation(self.n)
        return int(self._perm[g % self.n])

    def __iter__(self):
        g = self.start_sample + self.rank * self.micro
        while True:
            yield [self._window(g + j) for j in range(self.micro)]
            g += self.world * self.micro


class ValidationBatchSampler(Sampler[list[int]]):
    """The first `batches * world` micro-batches of held-out windows, split across ranks."""

    def __init__(self, n: int, micro: int, batches: int, rank: int, world: int):
        usable = min(batches, n // (micro * world))
        if usable == 0:
            raise ValueError(
                f"the val split has {n} windows, fewer than one batch per device "
                f"({micro} x {world}): tokenize more validation text or lower micro_batch_size"
            )
        self.batches = [
            list(range((b * world + rank) * micro, (b * world + rank + 1) * micro))
            for b in range(usable)
        ]

    def __iter__(self):
        return iter(self.batches)

    def __len__(self) -> int:
        return len(self.batches)


class PretrainDataModule(L.LightningDataModule):
    """Train/val loaders over `<tokenize_dir>/{train,val}`; its state is the data position.

    `state_dict()` goes into every checkpoint: the global samples consumed so far, which is
    global_step x samples per optimizer step (checkpoints are taken only at step boundaries, so
    no prefetched batch is ever counted). `load_state_dict()` restarts the sampler there.
    """

    def __init__(
        self,
        tokenize_dir: Path,
        block_size: int,
        micro_batch_size: int,
        grad_accum: int,
        seed: int,
        eod_id: int | None,
        val_batches: int,
        num_workers: int = 0,
    ):
        super().__init__()
        self.tokenize_dir = Path(tokenize_dir)
        self.block_size, self.micro, self.grad_accum = block_size, micro_batch_size, grad_accum
        self.seed, self.eod_id, self.val_batches = seed, eod_id, val_batches
        self.num_workers = num_workers
        self.start_sample = 0
        self.train = PackedWindows(TokenStream(self.tokenize_dir / "train"), block_size)
        self.val = PackedWindows(TokenStream(self.tokenize_dir / "val"), block_size)
        if len(self.train) == 0:
            raise ValueError(f"the train split has fewer than {block_size + 1} tokens")

    @classmethod
    def from_config(
        cls, tokenize_dir: Path, cfg: PretrainConfig, block_size: int, eod_id: int | None
    ) -> PretrainDataModule:
        return cls(
            tokenize_dir,
            block_size,
            cfg.micro_batch_size,
            cfg.grad_accum,
            cfg.seed,
            eod_id,
            cfg.val_batches,
            cfg.num_workers,
        )

    def _world(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer else (0, 1)

    @property
    def samples_per_step(self) -> int:
        """Sequences consumed by one optimizer step over all ranks."""
        return self.micro * self.grad_accum * self._world()[1]

    def _loader(self, dataset: Dataset, batch_sampler: Sampler) -> DataLoader:
        return DataLoader(
            dataset,
            batch_sampler=batch_sampler,
            collate_fn=PackedCollate(self.eod_id),
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        rank, world = self._world()
        sampler = ResumableBatchSampler(
            len(self.train), self.micro, rank, world, self.seed, self.start_sample
        )
        return self._loader(self.train, sampler)

    def val_dataloader(self) -> DataLoader:
        rank, world = self._world()
        sampler = ValidationBatchSampler(len(self.val), self.micro, self.val_batches, rank, world)
        return self._loader(self.val, sampler)

    def state_dict(self) -> dict[str, Any]:
        step = self.trainer.global_step if self.trainer else 0
        return {
            "consumed_samples": step * self.samples_per_step,
            "seed": self.seed,
            "block_size": self.block_size,
            "train_windows": len(self.train),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, have in (("seed", self.seed), ("block_size", self.block_size)):
            if state[key] != have:
                raise ValueError(f"checkpoint was trained with {key}={state[key]}, not {have}")
        if state["train_windows"] != len(self.train):
            raise ValueError("the train token shards changed since the checkpoint was written")
        self.start_sample = int(state["consumed_samples"])
