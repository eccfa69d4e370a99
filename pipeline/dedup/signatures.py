"""Phase 1: one signature file per input shard, and the store that reads them column by column.

A signature file is an uncompressed Arrow IPC file, row-aligned with the shard whose texts it
describes: `id`, `exact` (uint64 key of the normalized text), `length` (characters of the text),
`shingles` (how many; 0 keeps a document out of LSH) and one uint64 column `band_NN` per LSH band.
One band of the whole corpus is therefore one contiguous column per file: the band phase reads
8 bytes per document per band and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from pipeline.core.shard_io import arrow_batches, read_arrow
from pipeline.core.stage import atomic_path, local_file
from pipeline.dedup.minhash import MinHasher
from pipeline.dedup.shingles import document_features

SIGNATURE_VERSION = 1
"""Bumped whenever normalization, shingling or hashing changes: old signatures become unusable."""


def band_column(band: int) -> str:
    return f"band_{band:02d}"


def signature_schema(bands: int) -> pa.Schema:
    fields = [
        ("id", pa.string()),
        ("exact", pa.uint64()),
        ("length", pa.int64()),
        ("shingles", pa.int32()),
    ]
    return pa.schema(fields + [(band_column(b), pa.uint64()) for b in range(bands)])


def read_text_batches(path: Path, batch_documents: int) -> Iterator[pa.RecordBatch]:
    """The `id`/`text` columns of an input shard, `batch_documents` rows at a time."""
    for batch in arrow_batches(path):
        batch = batch.select(["id", "text"])
        for lo in range(0, batch.num_rows, batch_documents):
            yield batch.slice(lo, batch_documents)


def signature_batch(hasher: MinHasher, ngram_size: int, batch: pa.RecordBatch) -> pa.RecordBatch:
    """Signature rows of a batch of documents (`id`, `text`)."""
    texts = batch.column("text").to_pylist()
    features = document_features(texts, ngram_size)
    keys = hasher.band_keys(hasher.signatures(features.shingles))  # (B, D)
    columns = [
        batch.column("id").cast(pa.string()),
        pa.array(features.exact, pa.uint64()),
        pa.array([len(t) if t else 0 for t in texts], pa.int64()),
        pa.array(features.shingles.counts(), pa.int32()),
        *(pa.array(band, pa.uint64()) for band in keys),
    ]
    return pa.RecordBatch.from_arrays(columns, schema=signature_schema(hasher.bands))


def write_signatures(
    hasher: MinHasher, ngram_size: int, batch_documents: int, shard: Path, out: Path
) -> int:
    """Write the signature file of `shard` to `out` (atomically); returns its number of rows."""
    rows = 0
    with atomic_path(out) as tmp, pa.ipc.new_file(str(tmp), signature_schema(hasher.bands)) as w:
        for batch in read_text_batches(shard, batch_documents):
            w.write_batch(signature_batch(hasher, ngram_size, batch))
            rows += batch.num_rows
    return rows


def to_numpy(column: pa.ChunkedArray) -> np.ndarray:
    """A column as one numpy array: numbers straight from the Arrow buffers (no nulls here),
    strings as an object array. (pyarrow's own `to_numpy` imports pandas: 0.7 s per worker.)"""
    if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        return np.array(column.to_pylist(), dtype=object)
    dtype = np.dtype(str(column.type))
    parts = [
        np.frombuffer(chunk.buffers()[1], dtype=dtype)[chunk.offset : chunk.offset + len(chunk)]
        for chunk in column.chunks
    ]
    return np.concatenate(parts) if parts else np.empty(0, dtype=dtype)


@dataclass(frozen=True)
class SignatureFile:
    """A signature file, the shard holding the same rows' texts, and where it sits in the store."""

    path: str
    text_path: str
    rows: int
    reference: bool
    """True for the kept documents of an earlier run (`dedup.reference_dirs`)."""


class SignatureStore:
    """All signature files of a run as one indexed corpus: reference files first, then inputs.

    A document's global index is its file's offset plus its row; every array the later phases
    keep (ranks, union-find parents, survivors) is indexed by it.
    """

    def __init__(self, files: list[SignatureFile]):
        self.files = files
        self.offsets = np.concatenate([[0], np.cumsum([f.rows for f in files])]).astype(np.int64)

    @property
    def size(self) -> int:
        return int(self.offsets[-1])

    @property
    def reference_size(self) -> int:
        return sum(f.rows for f in self.files if f.reference)

    def column(self, name: str) -> np.ndarray:
        """One column over the whole corpus, (N,); a band column costs 8 bytes per document."""
        parts = [self._read(f, name) for f in self.files if f.rows]
        return np.concatenate(parts) if parts else np.empty(0, dtype=np.uint64)

    def _read(self, file: SignatureFile, name: str) -> np.ndarray:
        return to_numpy(read_arrow(local_file(file.path), [name])[name])

    def locate(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(file number, row in file) of each global index."""
        file_no = np.searchsorted(self.offsets, indices, side="right") - 1
        return file_no, indices - self.offsets[file_no]
