"""MinHash signatures and LSH band keys for many documents at once, with datasketch's permutations.

`MinHasher` takes datasketch's `affine32` scheme as is: the permutation parameters of
`datasketch.MinHash(num_perm, seed, scheme="affine32")`, the MurmurHash3 fmix32 pre-mix and
`a * h + b mod 2^32`. Instead of one `update_batch` call per document it applies them to the
shingles of a whole batch in one (S, P) array and reduces per document with
`np.minimum.reduceat`, so a signature here is bit-for-bit the `hashvalues` datasketch computes
for the same 32-bit shingle hashes (tests/dedup/test_minhash.py checks this).

A band key is a 64-bit hash of a band's `rows` values. Two documents share a band's key iff their
rows in that band are equal (up to 64-bit collisions, ~N^2 / 2^65 per band): datasketch's
`MinHashLSH` uses the raw row bytes as the bucket key, which is the same test in 4x the space.
"""

from __future__ import annotations

import numpy as np

from pipeline.dedup.shingles import ShingleBatch, fmix

_ROW_BASE = np.uint64(0x9FB21C651E98DF25)
_EMPTY = np.uint32(0xFFFFFFFF)  # datasketch's initial hash value (and an empty set's signature)


def to_hash32(shingles: np.ndarray) -> np.ndarray:
    """The 32-bit shingle hash MinHash sees: the high half of the 64-bit one."""
    return (shingles >> np.uint64(32)).astype(np.uint32)


class MinHasher:
    """Signatures (num_perm values per document) and band keys (bands per document)."""

    def __init__(self, bands: int, rows: int, seed: int = 1, chunk_shingles: int = 8192):
        # datasketch (with scipy) takes ~1 s to import: workers get a pickled MinHasher instead.
        from datasketch import MinHash

        self.bands, self.rows, self.seed = bands, rows, seed
        self.num_perm = bands * rows
        reference = MinHash(num_perm=self.num_perm, seed=seed, scheme="affine32")
        a, b = reference.permutations  # (P,) uint32 each, `a` odd
        self.a, self.b = a[:, None], b[:, None]  # (P, 1): permutations run along axis 0
        # (P, chunk) uint32 work array, 3.7 MB at P=112: small enough to stay in cache.
        self.chunk_shingles = chunk_shingles

    def signatures(self, batch: ShingleBatch) -> np.ndarray:
        """(D, P) uint32 MinHash values; a document without shingles keeps all values at max."""
        counts = batch.counts()
        out = np.full((len(counts), self.num_perm), _EMPTY, dtype=np.uint32)  # (D, P)
        hv = fmix(to_hash32(batch.hashes))  # (S,)
        owner = np.repeat(np.arange(len(counts)), counts)  # (S,) document of each shingle
        work = np.empty((self.num_perm, self.chunk_shingles), dtype=np.uint32)
        for lo in range(0, len(hv), self.chunk_shingles):
            part, docs = hv[lo : lo + self.chunk_shingles], owner[lo : lo + self.chunk_shingles]
            permuted = work[:, : len(part)]  # (P, s)
            np.multiply(self.a, part[None, :], out=permuted)  # wraps mod 2^32, as datasketch
            permuted += self.b
            first = np.flatnonzero(np.concatenate([[True], docs[1:] != docs[:-1]]))
            mins = np.minimum.reduceat(permuted, first, axis=1)  # (P, d)
            # A document may span two chunks: keep the smaller value.
            out[docs[first]] = np.minimum(out[docs[first]], mins.T)
        return out

    def band_keys(self, signatures: np.ndarray) -> np.ndarray:
        """(B, D) uint64 band keys, band-major so that one band is one contiguous column."""
        rows = signatures.reshape(len(signatures), self.bands, self.rows).astype(np.uint64)
        key = np.zeros(rows.shape[:2], dtype=np.uint64)  # (D, B)
        for r in range(self.rows):
            key = key * _ROW_BASE + rows[:, :, r]
        return np.ascontiguousarray(fmix(key).T)
