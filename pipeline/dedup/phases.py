"""The work units of phases 1-3 (signatures, bands, clusters); each records itself when done.

Memory model (N documents in the store, new and reference; B bands; P = B x rows permutations):
- signatures (per worker): one batch of `dedup.batch_documents` texts, its shingle hashes (8
  bytes per word) and a (P, 8192) uint32 work array; never a whole shard, never the corpus.
- band (per worker): the band's column (8 N), the eligibility mask (N), and the sort of the
  eligible keys (~32 N): about 41 bytes per document, whatever the text size.
- clusters (one process): exact keys (8 N), priority ranks (8 N), union-find parents (8 N),
  lengths with `verify` (8 N), the survivor/status arrays (9 N) and their sorts, plus one band's
  candidate pairs at a time (16 bytes per pair, at most N per band): ~50-60 bytes per document.
  Verification holds at most `dedup.verify_batch_chars` of text and its shingle sets.
- links: the ids of the C documents in clusters (C <= N), as Arrow strings.
- output (per worker): one record batch of an input shard at a time, the shard's signature rows,
  and the shard's slice of the links.
Peak memory is therefore linear in N with a constant of tens of bytes, bounded above by
N x B x 16 bytes (every document a candidate in every band); benchmarks/dedup.py measures it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.core.shard_io import UNREADABLE, read_arrow
from pipeline.core.stage import UnitLedger, atomic_path, local_file
from pipeline.dedup.clusters import (
    EXACT_DUPLICATE,
    KEEP,
    NEAR_DUPLICATE,
    SURVIVOR,
    UnionFind,
    band_edges,
    exact_edges,
    priority_ranks,
    statuses,
    survivors,
)
from pipeline.dedup.config import DedupConfig
from pipeline.dedup.minhash import MinHasher
from pipeline.dedup.signatures import (
    SignatureFile,
    SignatureStore,
    band_column,
    signature_schema,
    write_signatures,
)
from pipeline.dedup.verify import verified


@dataclass
class SignatureJob:
    """Phase 1 for one input shard."""

    unit: str
    shard: str
    out: str
    stage_dir: str
    hasher: MinHasher
    ngram_size: int
    batch_documents: int


def signature_unit(job: SignatureJob) -> dict[str, Any]:
    """Write the shard's signature file; an unreadable shard gets an empty one and a note."""
    info: dict[str, Any] = {"unit": job.unit, "unreadable": None}
    try:
        info["rows"] = write_signatures(
            job.hasher, job.ngram_size, job.batch_documents, local_file(job.shard), Path(job.out)
        )
    except (OSError, pa.ArrowException, KeyError) as exc:
        with (
            atomic_path(Path(job.out)) as tmp,
            pa.ipc.new_file(str(tmp), signature_schema(job.hasher.bands)),
        ):
            pass  # zero rows: the shard is one rejected record, written in phase 4
        # The shard's rejection says which file and which stage to rerun (`shard_io`).
        named = isinstance(exc, UNREADABLE)
        info.update(rows=0, unreadable=str(exc) if named else f"{type(exc).__name__}: {exc}")
    UnitLedger(Path(job.stage_dir)).mark_finished(f"signatures-{job.unit}", info)
    return info


@dataclass
class BandJob:
    """Phase 2 for one band."""

    band: int
    store_files: list[SignatureFile]
    work_dir: str
    stage_dir: str


def band_path(work_dir: Path, band: int) -> Path:
    return Path(work_dir) / "bands" / f"band-{band:02d}.npy"


def save_atomic(path: Path, array: np.ndarray) -> None:
    """np.save under a temp name `prepare_stage_dir` cleans up, then rename into place."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.save(fh, array)


def band_unit(job: BandJob) -> dict[str, Any]:
    """Candidate pairs of one band among the eligible documents, saved as (E, 2) int64."""
    store = SignatureStore(job.store_files)
    eligible = np.load(local_file(Path(job.work_dir) / "eligible.npy"))  # (N,) bool
    edges = band_edges(store.column(band_column(job.band)), eligible, store.reference_size)
    save_atomic(band_path(Path(job.work_dir), job.band), edges)
    info = {"band": job.band, "pairs": len(edges)}
    UnitLedger(Path(job.stage_dir)).mark_finished(f"band-{job.band:02d}", info)
    return info


def exact_phase(store: SignatureStore, work_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Exact groups first; saves their edges and which documents go on to LSH.

    Returns (rank, exact keys), both (N,), for the cluster phase."""
    rank = priority_ranks(store.column("length"), store.reference_size)  # (N,)
    exact = store.column("exact")  # (N,) uint64
    edges = exact_edges(exact, rank)  # (E, 2): leader, duplicate
    eligible = store.column("shingles") > 0  # an empty text has no signature to band
    eligible[edges[:, 1]] = False  # an exact duplicate follows its leader's cluster
    save_atomic(work_dir / "exact_edges.npy", edges)
    save_atomic(work_dir / "eligible.npy", eligible)
    return rank, exact


def merge_bands(
    cfg: DedupConfig, store: SignatureStore, uf: UnionFind, bands: int, work_dir: Path
) -> dict[str, int]:
    """Union the bands' candidate pairs one band at a time (verified first if configured)."""
    counts = {"candidate_pairs": 0, "checked_pairs": 0, "merged_pairs": 0}
    lengths = store.column("length") if cfg.verify else None  # (N,) to budget text reads
    for band in range(bands):
        edges = np.load(local_file(band_path(work_dir, band)))  # (E, 2)
        counts["candidate_pairs"] += len(edges)
        edges = edges[~uf.same(edges)]  # pairs already joined cannot change anything
        if cfg.verify and len(edges):
            counts["checked_pairs"] += len(edges)
            edges = verified(cfg, store, edges, lengths)
        counts["merged_pairs"] += len(edges)
        uf.union(edges)
    return counts


def cluster_phase(
    cfg: DedupConfig, store: SignatureStore, rank: np.ndarray, exact: np.ndarray, work_dir: Path
) -> dict[str, int]:
    """Union exact groups and band pairs, pick survivors; saves status.npy and survivor.npy."""
    uf = UnionFind(store.size)
    uf.union(np.load(local_file(work_dir / "exact_edges.npy")))
    counts = merge_bands(cfg, store, uf, cfg.lsh_shape()[0], work_dir)
    roots = uf.roots()
    survivor = survivors(roots, rank)
    status = statuses(roots, survivor, exact)
    save_atomic(work_dir / "survivor.npy", survivor)
    save_atomic(work_dir / "status.npy", status)
    del roots, survivor  # the links phase reads them back, memory-mapped
    links_phase(store, work_dir)
    new = slice(store.reference_size, None)  # counts are about this run's documents
    return counts | {
        "exact_duplicates": int((status[new] == EXACT_DUPLICATE).sum()),
        "near_duplicates": int((status[new] == NEAR_DUPLICATE).sum()),
        "clusters": int((status == SURVIVOR).sum()),
    }


def links_phase(store: SignatureStore, work_dir: Path) -> None:
    """`_work/links.arrow`: (index, cluster_id) of every document in a cluster, by index.

    The cluster id is the survivor's id. Each signature file's `id` column is read once, for all
    the survivors it holds, so the output units never look ids up across shards."""
    status = np.load(local_file(work_dir / "status.npy"), mmap_mode="r")
    members = np.flatnonzero(np.asarray(status) != KEEP)  # (C,) sorted global indices
    targets = np.load(local_file(work_dir / "survivor.npy"), mmap_mode="r")[members]  # (C,)
    file_no, rows = store.locate(targets)
    order = np.argsort(file_no, kind="stable")  # members grouped by their survivor's file
    bounds = np.searchsorted(file_no[order], np.arange(len(store.files) + 1))
    chunks = [pa.array([], pa.string())]
    for f in np.flatnonzero(np.diff(bounds)):
        ids = read_arrow(local_file(store.files[f].path), ["id"]).column("id")
        chunks.append(
            pc.take(ids, pa.array(rows[order[bounds[f] : bounds[f + 1]]])).combine_chunks()
        )
    grouped = pa.concat_arrays([c.cast(pa.string()) for c in chunks])  # (C,) in `order` order
    inverse = np.empty_like(order)
    inverse[order] = np.arange(len(order))
    table = pa.table({"index": members, "cluster_id": pc.take(grouped, pa.array(inverse))})
    with atomic_path(work_dir / "links.arrow") as tmp, pa.ipc.new_file(str(tmp), table.schema) as w:
        w.write_table(table)
