"""Which checkpoint a training run resumes from, and what happens to one that does not load.

`settle_resume_checkpoint` (rank 0, while it prepares the stage directory, before any other rank
reads it) tries the resume candidates newest first: `last.ckpt`, then the `best-step=N.ckpt`
files by step. A candidate that does not load is named in one line and renamed aside to
`<name>.corrupt-<UTC time>` in the same directory (never deleted); the first one that loads is
where the run resumes, and with none the run starts from step 0 (one warning line). Every rank
then takes `resume_checkpoint`, the first candidate left, so all agree without loading anything.

The check loads with `torch.load(weights_only=True, mmap=True)`: nothing is unpickled beyond
tensors and plain containers, and tensor data is mapped, not read. It catches what makes
Lightning's resume fail before the first step: a zero-byte, truncated or foreign file, a pickle
that needs other classes, a dict without a resumable Lightning checkpoint's keys. It does not
catch flipped bytes inside tensor data. A sharded (FSDP) checkpoint is a directory: its
`meta.pt` (the loop and step state, rank 0's `torch.save`) is checked the same way and the
distributed-checkpoint `.metadata` index must be there and not empty; the shards themselves are
not read (their index is a full pickle, which this check does not load).
"""

from __future__ import annotations

import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import torch

from pipeline.pretrain.trainer import LAST

BEST = re.compile(r"best-step=(\d+)\.ckpt")
# What a resumable Lightning checkpoint holds (`trainer.save_checkpoint(weights_only=False)`);
# a sharded one keeps the weights and optimizer states in the shards, the rest in `meta.pt`.
FULL_KEYS = ("state_dict", "optimizer_states", "loops", "global_step", "epoch")
SHARDED_KEYS = ("loops", "global_step", "epoch")
SHARDED_META = "meta.pt"  # lightning.fabric.utilities.load._METADATA_FILENAME
SHARDED_INDEX = ".metadata"  # torch.distributed.checkpoint's index of the shards
ZIP_MAGIC = b"PK\x03\x04"  # `torch.save` writes a zip archive
UNPICKLER = "WeightsUnpickler error: "


def resume_candidates(ckpt_dir: Path) -> list[Path]:
    """`last.ckpt`, then `best-step=N.ckpt` by N, newest first: those that exist."""
    ckpt_dir = Path(ckpt_dir)
    if not ckpt_dir.is_dir():
        return []
    best = [p for p in ckpt_dir.iterdir() if BEST.fullmatch(p.name)]
    best.sort(key=lambda p: int(BEST.fullmatch(p.name)[1]), reverse=True)
    last = ckpt_dir / LAST
    return ([last] if last.exists() else []) + best


def checkpoint_error(path: Path) -> str | None:
    """Why `path` cannot be resumed from, in a few words; None when it loads."""
    path = Path(path)
    try:
        if path.is_dir():
            index = path / SHARDED_INDEX
            if not index.is_file() or index.stat().st_size == 0:
                return f"sharded checkpoint directory without its {SHARDED_INDEX} index"
            return _missing_keys(_load(path / SHARDED_META), SHARDED_KEYS)
        if path.stat().st_size == 0:
            return "empty file (0 bytes)"
        with path.open("rb") as fh:
            if fh.read(len(ZIP_MAGIC)) != ZIP_MAGIC:
                return "not a torch.save file (no zip header)"
        return _missing_keys(_load(path), FULL_KEYS)
    except Exception as err:  # noqa: BLE001 - any failure to load means "not resumable"
        return _short(err)


def _load(path: Path) -> Any:
    return torch.load(path, map_location="cpu", weights_only=True, mmap=True)


def _missing_keys(checkpoint: Any, keys: tuple[str, ...]) -> str | None:
    if not isinstance(checkpoint, dict):
        return f"not a Lightning checkpoint (a {type(checkpoint).__name__}, not a dict)"
    missing = [k for k in keys if k not in checkpoint]
    if missing:
        return f"not a resumable Lightning checkpoint (no {', '.join(missing)})"
    if "state_dict" in keys and not isinstance(checkpoint["state_dict"], dict):
        return "not a Lightning checkpoint (its state_dict is not a dict)"
    return None


def _short(err: BaseException, limit: int = 160) -> str:
    """The exception's type and the first sentence of its message (torch's run to paragraphs;
    of a `weights_only` refusal, the line that names the refused global)."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    reason = [ln.removeprefix(UNPICKLER) for ln in lines if ln.startswith(UNPICKLER)]
    text = (reason or lines or [""])[0].split(". ")[0]
    text = f"{type(err).__name__}: {text}" if text else type(err).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def set_aside(path: Path) -> Path:
    """Rename `path` (file or directory) to `<name>.corrupt-<UTC time>` beside it."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    os.replace(path, target)
    return target


def settle_resume_checkpoint(ckpt_dir: Path, label: str = "training") -> Path | None:
    """Rank 0, before other ranks look: set aside each candidate that does not load, newest
    first, until one loads; returns it (None: the run starts from step 0)."""
    set_aside_any = False
    for path in resume_candidates(ckpt_dir):
        error = checkpoint_error(path)
        if error is None:
            if set_aside_any:
                _say(f"{label}: resuming from the earlier checkpoint {path}")
            return path
        moved = set_aside(path)
        set_aside_any = True
        _say(f"{label}: checkpoint {path} does not load ({error}); moved aside to {moved.name}")
    if set_aside_any:
        _say(f"{label}: warning: no checkpoint in {ckpt_dir} loads; training restarts from step 0")
    return None


def resume_checkpoint(ckpt_dir: Path) -> Path | None:
    """Every rank: where `trainer.fit` resumes, the first candidate `settle_resume_checkpoint`
    left (it moved those before it aside), or None."""
    candidates = resume_candidates(ckpt_dir)
    return candidates[0] if candidates else None


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)
