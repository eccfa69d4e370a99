"""Token shards on disk: writing them atomically, reading them back memory-mapped, the split.

Layout (the contract in `pipeline.tokenize`): `<split>/shard-NNNNN.arrow` is an uncompressed Arrow
IPC file with exactly one record batch and one column `tokens` (uint16 or uint32);
`<split>/shard-NNNNN.index.arrow` has one row per document: id, start, length (EOD included).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.core.shard_io import damaged, first_batch, read_arrow
from pipeline.core.stage import atomic_path, read_manifest

SPLITS = ("train", "val")
TOKENS_COLUMN = "tokens"
INDEX_SUFFIX = ".index.arrow"
INDEX_SCHEMA = pa.schema([("id", pa.string()), ("start", pa.int64()), ("length", pa.int64())])


def id_fraction(doc_id: str) -> float:
    """A document's place in [0, 1), from its id alone: the same in every run and corpus size."""
    digest = hashlib.blake2b(doc_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def split_of(doc_id: str, val_fraction: float) -> str:
    """`val` for the lowest `val_fraction` of id hashes, else `train`: new shards move no one."""
    return "val" if id_fraction(doc_id) < val_fraction else "train"


def shard_name(number: int) -> str:
    return f"shard-{number:05d}"


def _write_ipc_atomic(path: Path, batch: pa.RecordBatch) -> None:
    # Uncompressed, one batch: the file's buffers are the arrays, so a memory map needs no copy.
    with atomic_path(path) as tmp, pa.ipc.new_file(str(tmp), batch.schema) as writer:
        writer.write_batch(batch)


def write_token_shard(
    split_dir: Path, name: str, tokens: np.ndarray, ids: list[str], lengths: np.ndarray
) -> dict[str, Any]:
    """Write `<name>.index.arrow` then `<name>.arrow`; returns the shard's stats and checksum."""
    starts = np.zeros(len(lengths), dtype=np.int64)
    np.cumsum(lengths[:-1], out=starts[1:])
    index = pa.record_batch(
        [pa.array(ids, pa.string()), pa.array(starts), pa.array(lengths, pa.int64())],
        schema=INDEX_SCHEMA,
    )
    _write_ipc_atomic(split_dir / f"{name}{INDEX_SUFFIX}", index)
    _write_ipc_atomic(
        split_dir / f"{name}.arrow", pa.record_batch([pa.array(tokens)], [TOKENS_COLUMN])
    )
    return {
        "shard": f"{name}.arrow",
        "tokens": int(len(tokens)),
        "documents": len(ids),
        "sha256": hashlib.sha256(memoryview(tokens)).hexdigest(),
    }


def token_shard_paths(split_dir: str | Path) -> list[Path]:
    """The token shards of a split in name order (index files excluded)."""
    paths = sorted(Path(split_dir).glob("shard-*.arrow"))
    return [p for p in paths if not p.name.endswith(INDEX_SUFFIX)]


def load_token_shard(path: str | Path) -> np.ndarray:
    """One shard's tokens as a read-only numpy view of the memory-mapped file (no copy).

    A file that is no token shard (truncated, empty, another schema) is a `DamagedFile` naming
    it and the stage to rerun (`pipeline/core/shard_io.py`)."""
    batch = first_batch(path)
    column = batch.column(0)
    if batch.schema.names[0] != TOKENS_COLUMN or column.type not in (pa.uint16(), pa.uint32()):
        raise damaged(path, f"expected one uint16/uint32 column `tokens`, got {batch.schema}")
    return column.to_numpy(zero_copy_only=True)


def token_sha256(path: str | Path) -> str:
    """sha256 of a shard's token ids, as the manifest's `shard_stats` record it; "" when the
    file is no readable token shard."""
    try:
        return hashlib.sha256(memoryview(load_token_shard(path))).hexdigest()
    except (OSError, ValueError, IndexError, pa.ArrowException):
        return ""


def load_token_shards(split_dir: str | Path) -> list[np.ndarray]:
    """Every shard of a split (`<run>/tokenize/train` or `.../val`), memory-mapped, zero-copy."""
    return [load_token_shard(p) for p in token_shard_paths(split_dir)]


def read_token_index(shard_path: str | Path) -> pa.Table:
    """The document index next to a token shard: id, start, length (EOD included)."""
    path = Path(shard_path)
    index_path = path.with_name(path.name.removesuffix(".arrow") + INDEX_SUFFIX)
    return read_arrow(index_path)


def read_tokenizer_info(tokenize_dir: str | Path) -> dict[str, Any]:
    """The manifest's `tokenizer` section plus `dtype`, with `path` made absolute."""
    tokenize_dir = Path(tokenize_dir)
    manifest = read_manifest(tokenize_dir)
    if not manifest or "tokenizer" not in manifest:
        raise FileNotFoundError(
            f"{tokenize_dir} has no finished tokenize stage (no manifest.json): run it first"
        )
    info = json.loads(json.dumps(manifest["tokenizer"]))  # a deep copy the caller may change
    info["path"] = str(tokenize_dir / info["path"])
    info["dtype"] = manifest["dtype"]
    return info
