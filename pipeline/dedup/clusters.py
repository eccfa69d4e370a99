"""Phases 2-3: exact groups, candidate pairs per LSH band, union-find clusters, survivors.

All arrays are indexed by a document's global index in the `SignatureStore` and hold a fixed
number of bytes per document, so memory follows the number of documents, never text size.

Survivor rule (deterministic, independent of worker timing): in each cluster the kept document
is the first by (1) documents of a reference run (`dedup.reference_dirs`) before this run's
(they are already published), (2) the longest text, (3) the earliest position in the corpus
(input shard name order, then row).
"""

from __future__ import annotations

import numpy as np

KEEP, SURVIVOR, EXACT_DUPLICATE, NEAR_DUPLICATE = 0, 1, 2, 3
"""Per-document status: alone, kept for its cluster, removed by the exact or the MinHash pass."""


def priority_ranks(length: np.ndarray, reference_size: int) -> np.ndarray:
    """(N,) rank of each document under the survivor rule; rank 0 is the most preferred."""
    index = np.arange(len(length), dtype=np.int64)
    is_new = index >= reference_size
    order = np.lexsort((index, -length.astype(np.int64), is_new))  # last key is the primary
    rank = np.empty_like(index)
    rank[order] = index
    return rank


def group_edges(keys: np.ndarray, members: np.ndarray, lead_rank: np.ndarray) -> np.ndarray:
    """(E, 2) edges joining each document to the leader of its group of equal `keys`.

    `members` are the global indices of `keys`' entries; a group's leader is its member with the
    smallest `lead_rank` (pass the global index itself for "the first document")."""
    order = np.lexsort((lead_rank, keys))  # groups together, leader first in each
    sorted_keys, sorted_members = keys[order], members[order]
    starts = np.ones(len(order), dtype=bool)  # (M,); sized by M so that M == 0 works too
    starts[1:] = sorted_keys[1:] != sorted_keys[:-1]
    leader_pos = np.maximum.accumulate(np.where(starts, np.arange(len(order)), 0))
    follower = ~starts
    return np.stack([sorted_members[leader_pos][follower], sorted_members[follower]], axis=1)


def exact_edges(exact: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """(E, 2) edges (survivor-to-be, duplicate) joining documents with the same exact key."""
    return group_edges(exact, np.arange(len(exact), dtype=np.int64), rank)


def band_edges(keys: np.ndarray, eligible: np.ndarray, reference_size: int) -> np.ndarray:
    """(E, 2) candidate pairs of one band: each document joined to the first of its bucket.

    Pairs of two reference documents are left out: an earlier run already settled them."""
    members = np.flatnonzero(eligible)
    edges = group_edges(keys[members], members, members)
    return edges[(edges >= reference_size).any(axis=1)]


class UnionFind:
    """Disjoint sets over N documents, merged a whole array of edges at a time (numpy).

    Every root points to itself and every other parent has a smaller index than its child, so
    there are no cycles; the root of a set is its smallest global index."""

    def __init__(self, size: int):
        self.parent = np.arange(size, dtype=np.int64)  # (N,)

    def find(self, x: np.ndarray) -> np.ndarray:
        """Roots of the documents `x` (pointer jumping, compresses the paths it walks)."""
        x = np.asarray(x, dtype=np.int64)
        root = self.parent[x]
        while True:
            up = self.parent[root]
            if np.array_equal(up, root):
                break
            root = up
        self.parent[x] = root
        return root

    def union(self, edges: np.ndarray) -> None:
        """Merge the sets of both ends of every (u, v) edge."""
        u, v = edges[:, 0], edges[:, 1]
        while len(u):
            ru, rv = self.find(u), self.find(v)
            differ = ru != rv
            u, v, ru, rv = u[differ], v[differ], ru[differ], rv[differ]
            # Hook the larger root under the smaller; when one root gets several parents in
            # this round, np.minimum.at keeps the smallest and the others retry next round.
            np.minimum.at(self.parent, np.maximum(ru, rv), np.minimum(ru, rv))

    def same(self, edges: np.ndarray) -> np.ndarray:
        """(E,) True where both ends of an edge are already in one set."""
        return self.find(edges[:, 0]) == self.find(edges[:, 1])

    def roots(self) -> np.ndarray:
        """(N,) root of every document (full path compression)."""
        while True:
            up = self.parent[self.parent]
            if np.array_equal(up, self.parent):
                return self.parent
            self.parent = up


def survivors(roots: np.ndarray, rank: np.ndarray) -> np.ndarray:
    """(N,) global index of the document kept for each document's cluster."""
    best = np.full(len(roots), len(roots), dtype=np.int64)
    np.minimum.at(best, roots, rank)  # best rank per root
    by_rank = np.argsort(rank)
    return by_rank[best[roots]]


def statuses(roots: np.ndarray, survivor: np.ndarray, exact: np.ndarray) -> np.ndarray:
    """(N,) uint8 KEEP / SURVIVOR / EXACT_DUPLICATE / NEAR_DUPLICATE."""
    size = np.bincount(roots, minlength=len(roots))[roots]
    index = np.arange(len(roots))
    status = np.full(len(roots), KEEP, dtype=np.uint8)
    status[(size > 1) & (survivor == index)] = SURVIVOR
    removed = survivor != index
    status[removed & (exact == exact[survivor])] = EXACT_DUPLICATE
    status[removed & (exact != exact[survivor])] = NEAR_DUPLICATE
    return status
