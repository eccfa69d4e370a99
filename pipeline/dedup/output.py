"""Phase 4, one unit per input shard: kept rows, the rejected ledger, clusters and the index.

For an input shard `<stem>.arrow` the unit writes, each file atomically (temp name, rename):
- `<stem>.arrow`: the kept rows, every input column passed through unchanged;
- `rejected/<stem>-NNNNN.arrow`: removed rows (`id, url, stage, reason, detail, duplicate_of`);
- `clusters/<stem>.arrow`: `id, cluster_id, status` for each of its documents in a cluster of
  two or more (`cluster_id` is the survivor's id; status survivor / exact / near duplicate);
- `index/<stem>.arrow`: the signature rows of the kept documents, row-aligned with `<stem>.arrow`:
  what a later run reads through `dedup.reference_dirs`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.core.shard_io import arrow_batches, open_arrow, read_arrow
from pipeline.core.stage import (
    REJECTED_SCHEMA,
    RejectedLedger,
    UnitLedger,
    local_file,
    place,
    temp_path,
)
from pipeline.dedup.clusters import EXACT_DUPLICATE, NEAR_DUPLICATE, SURVIVOR
from pipeline.dedup.signatures import to_numpy

STAGE = "dedup"
REJECTED_DEDUP_SCHEMA = REJECTED_SCHEMA.append(pa.field("duplicate_of", pa.string()))
CLUSTER_SCHEMA = pa.schema(
    [("id", pa.string()), ("cluster_id", pa.string()), ("status", pa.string())]
)
REASONS = {EXACT_DUPLICATE: "exact_duplicate", NEAR_DUPLICATE: "near_duplicate"}
STATUS_NAMES = {SURVIVOR: "survivor", **REASONS}


@dataclass
class OutputJob:
    """Everything a worker needs to write the outputs of one input shard."""

    unit: str
    shard: str
    signatures: str
    """The shard's signature file (row-aligned with it)."""
    lo: int
    """Global index of the shard's first row; its rows are [lo, hi)."""
    hi: int
    stage_dir: str
    work_dir: str
    compression: str | None
    details: dict[int, str] = field(default_factory=dict)
    """`detail` text of the rejected rows, by status."""
    unreadable: str | None = None
    """Why phase 1 could not read the shard (then it is one rejected record)."""


class AtomicArrowFile:
    """An Arrow IPC file opened on first write under a temp name and renamed into place on close."""

    def __init__(self, path: Path, schema: pa.Schema, compression: str | None = None):
        self.path, self.schema, self.rows = Path(path), schema, 0
        self.options = pa.ipc.IpcWriteOptions(compression=compression)
        self._tmp = temp_path(self.path)
        self._writer: pa.ipc.RecordBatchFileWriter | None = None

    def write(self, batch: pa.RecordBatch) -> None:
        if batch.num_rows == 0:
            return
        if self._writer is None:
            self._writer = pa.ipc.new_file(str(self._tmp), self.schema, options=self.options)
        self._writer.write_batch(batch)
        self.rows += batch.num_rows

    def close(self) -> str | None:
        """The file name when rows were written (nothing is left on disk otherwise)."""
        self.path.unlink(missing_ok=True)  # from an earlier, interrupted attempt
        if self._writer is None:
            return None
        self._writer.close()
        place(self._tmp, self.path)
        return self.path.name


def _cluster_rows(job: OutputJob) -> tuple[np.ndarray, np.ndarray, list]:
    """(rows in this shard, their status, their cluster ids) for the shard's clustered rows."""
    work = Path(job.work_dir)
    links = read_arrow(local_file(work / "links.arrow"))
    index = to_numpy(links.column("index"))  # (C,) sorted global indices
    first, last = np.searchsorted(index, [job.lo, job.hi])
    status = np.load(local_file(work / "status.npy"), mmap_mode="r")[index[first:last]]
    cluster_ids = links.column("cluster_id").slice(first, last - first).to_pylist()
    return index[first:last] - job.lo, np.asarray(status), cluster_ids


class ShardLedger:
    """The rejected and cluster rows of one shard, filled batch by batch."""

    def __init__(self, job: OutputJob, rows: np.ndarray, status: np.ndarray, cluster_ids: list):
        self.job, self.rows, self.status, self.cluster_ids = job, rows, status, cluster_ids
        self.rejected = RejectedLedger(job.stage_dir, job.unit, STAGE, REJECTED_DEDUP_SCHEMA)
        self.clusters: list[tuple] = []

    def keep_mask(self, size: int) -> np.ndarray:
        keep = np.ones(size, dtype=bool)
        keep[self.rows[(self.status == EXACT_DUPLICATE) | (self.status == NEAR_DUPLICATE)]] = False
        return keep

    def add_batch(self, batch: pa.RecordBatch, start: int) -> None:
        """Ledger rows for the clustered documents among rows [start, start + batch rows)."""
        first, last = np.searchsorted(self.rows, [start, start + batch.num_rows])
        ids = batch.column("id")
        urls = batch.column("url") if "url" in batch.schema.names else None
        for k in range(first, last):
            row, code, cluster_id = (
                int(self.rows[k]) - start,
                int(self.status[k]),
                self.cluster_ids[k],
            )
            doc_id = ids[row].as_py()
            self.clusters.append((doc_id, cluster_id, STATUS_NAMES[code]))
            if code in REASONS:
                url = urls[row].as_py() if urls is not None else None
                detail = self.job.details.get(code, "")
                self.rejected.reject(doc_id, url, REASONS[code], detail, duplicate_of=cluster_id)


def _write_documents(job: OutputJob, ledger: ShardLedger, size: int) -> int:
    """One pass over the shard: kept rows out, ledger rows noted; then the kept signatures."""
    stem, out_dir = Path(job.shard).stem, Path(job.stage_dir)
    keep = ledger.keep_mask(size)
    shard = local_file(job.shard)
    docs = AtomicArrowFile(out_dir / f"{stem}.arrow", open_arrow(shard).schema, job.compression)
    start = 0
    for batch in arrow_batches(shard):
        ledger.add_batch(batch, start)
        docs.write(batch.filter(pa.array(keep[start : start + batch.num_rows])))
        start += batch.num_rows
    signatures = read_arrow(local_file(job.signatures))
    index = AtomicArrowFile(out_dir / "index" / f"{stem}.arrow", signatures.schema)
    # One batch whatever the signature phase's batching was: the same rows, the same bytes.
    for batch in signatures.filter(pa.array(keep)).combine_chunks().to_batches():
        index.write(batch)
    docs.close()
    index.close()
    return docs.rows


def write_unit(job: OutputJob) -> dict[str, Any]:
    """Write the outputs of one input shard and mark the unit finished."""
    out_dir = Path(job.stage_dir)
    for stale in (out_dir / "rejected").glob(f"{job.unit}-*.arrow"):
        stale.unlink()  # rejected shards of an earlier, interrupted attempt
    if job.unreadable is not None:
        ledger = ShardLedger(job, np.empty(0, np.int64), np.empty(0, np.uint8), [])
        ledger.rejected.reject(None, Path(job.shard).name, "unreadable_shard", job.unreadable)
        return _finish(job, ledger, documents=0, records_in=1)
    ledger = ShardLedger(job, *_cluster_rows(job))
    documents = _write_documents(job, ledger, job.hi - job.lo)
    return _finish(job, ledger, documents=documents, records_in=job.hi - job.lo)


def _finish(job: OutputJob, ledger: ShardLedger, documents: int, records_in: int) -> dict:
    out_dir, rejected, clusters = Path(job.stage_dir), ledger.rejected, ledger.clusters
    stem = Path(job.shard).stem
    cluster_file = AtomicArrowFile(out_dir / "clusters" / f"{stem}.arrow", CLUSTER_SCHEMA)
    if clusters:
        columns = [list(column) for column in zip(*clusters)]
        cluster_file.write(pa.record_batch(columns, schema=CLUSTER_SCHEMA))
    info = {
        "unit": job.unit,
        "input": Path(job.shard).name,
        "records_in": records_in,
        "documents": documents,
        "rejected": rejected.rows,
        "reasons": dict(rejected.reasons),
        "in_clusters": len(clusters),
        "rejected_shards": rejected.close(),
        "clusters_file": cluster_file.close(),
    }
    UnitLedger(out_dir).mark_finished(f"output-{job.unit}", info)
    return info
