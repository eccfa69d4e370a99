"""Optional true-Jaccard check of candidate pairs (`dedup.verify`).

LSH makes a pair a candidate with probability 1 - (1 - s^r)^b for Jaccard s: with 14 x 8 that
is 21 % at s = 0.6 and 57 % at s = 0.7, so without a check some pairs below the threshold are
merged. Verification reads both texts again (from the row-aligned shards next to the signature
files), builds their shingle sets with the same normalization, and keeps a pair only if its
Jaccard reaches `dedup.verify_threshold`. Only pairs that would join two different clusters are
checked (the caller filters with `UnionFind.same`), which bounds the work by the number of merges.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipeline.core.shard_io import read_arrow
from pipeline.core.stage import local_file
from pipeline.dedup.config import DedupConfig
from pipeline.dedup.shingles import document_features, jaccard, shingle_sets
from pipeline.dedup.signatures import SignatureStore


def read_texts(store: SignatureStore, indices: np.ndarray) -> list[str]:
    """Texts of the sorted global `indices`, reading each shard involved once (one at a time)."""
    texts: list[str] = []
    file_no, rows = store.locate(indices)  # sorted indices: grouped by file already
    bounds = np.searchsorted(file_no, np.arange(len(store.files) + 1))
    for f in np.flatnonzero(np.diff(bounds)):
        column = read_arrow(local_file(store.files[f].text_path), ["text"])["text"]
        taken = pc.take(column, pa.array(rows[bounds[f] : bounds[f + 1]])).to_pylist()
        texts.extend(t or "" for t in taken)
    return texts


def true_jaccards(
    store: SignatureStore, edges: np.ndarray, ngram_size: int, batch_documents: int
) -> np.ndarray:
    """(E,) Jaccard similarity of the shingle sets of both ends of each edge.

    Texts are shingled `batch_documents` at a time, as in the signature phase: the numpy work
    arrays (~30 bytes per character) stay small; only the sets (8 bytes per shingle) are kept."""
    docs = np.unique(edges)  # (U,) sorted
    texts = read_texts(store, docs)
    sets: list[np.ndarray] = []
    for lo in range(0, len(texts), batch_documents):
        part = texts[lo : lo + batch_documents]
        sets += shingle_sets(document_features(part, ngram_size, exact=False).shingles)
    at = np.searchsorted(docs, edges)  # (E, 2) positions in `docs`
    return np.array([jaccard(sets[u], sets[v]) for u, v in at.tolist()], dtype=np.float64)


def verified(
    cfg: DedupConfig, store: SignatureStore, edges: np.ndarray, lengths: np.ndarray
) -> np.ndarray:
    """The edges whose true Jaccard reaches `dedup.verify_threshold`.

    Edges are checked in chunks holding at most `dedup.verify_batch_chars` characters of text
    (known from the signatures' `length` before anything is read); each chunk reads every shard
    it needs once."""
    keep = np.zeros(len(edges), dtype=bool)
    cost = lengths[edges[:, 0]] + lengths[edges[:, 1]] + 1  # (E,) characters a pair needs
    chunk = np.cumsum(cost) // cfg.verify_batch_chars
    starts = np.flatnonzero(np.concatenate([[True], chunk[1:] != chunk[:-1]]))
    for lo, hi in zip(starts, np.append(starts[1:], len(edges))):
        similarity = true_jaccards(store, edges[lo:hi], cfg.ngram_size, cfg.batch_documents)
        keep[lo:hi] = similarity >= cfg.verify_threshold
    return edges[keep]
