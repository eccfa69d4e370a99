"""A Bloom filter of 64-bit n-gram hashes, for evaluation sets too large for the sorted index.

The sorted index holds 16 bytes per n-gram (hash and item); the filter holds `bits_per_ngram`
bits (about 10 for a 1% false-positive rate at k = 7), and no item. A document's n-grams that
the filter may hold are only candidates: `confirm` re-reads the evaluation items once for a
whole shard's candidates and keeps the hashes an item really has, with the first such item (in
the order the sorted index would name it), so a false positive never drops a document.

Probes by double hashing (Kirsch and Mitzenmacher 2006): position_i = h1 + i * h2 mod m, with
h1 the n-gram's hash and h2 an odd mix of it (splitmix64's finalizer), all in uint64 numpy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from pipeline.decontaminate.ngrams import ngram_hashes, words

_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finalizer, forced odd: the probe step h2 of each hash (uint64)."""
    with np.errstate(over="ignore"):
        z = (h ^ (h >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return (z ^ (z >> np.uint64(31))) | np.uint64(1)


@dataclass
class BloomFilter:
    """`m` bits (a uint8 array of m / 8 bytes), `k` probes per hash."""

    bits: np.ndarray
    k: int

    @property
    def m(self) -> int:
        return len(self.bits) * 8

    @classmethod
    def sized(cls, ngrams: int, max_bytes: int) -> BloomFilter:
        """A filter for `ngrams` hashes in at most `max_bytes`: 10 bits per n-gram (1% false
        positives), fewer when the bound says so; k = m/n * ln 2, the optimum, from 1 to 16."""
        nbytes = max(8, min(max_bytes, math.ceil(ngrams * 10 / 8)))
        k = max(1, min(16, round(nbytes * 8 / max(ngrams, 1) * math.log(2))))
        return cls(np.zeros(nbytes, dtype=np.uint8), k)

    def _positions(self, hashes: np.ndarray) -> np.ndarray:
        """(k, N) bit positions of `hashes`."""
        h2, m = _mix(hashes), np.uint64(self.m)
        steps = np.arange(self.k, dtype=np.uint64)[:, None]  # (k, 1)
        with np.errstate(over="ignore"):
            return (hashes[None, :] + steps * h2[None, :]) % m  # (k, N)

    def add(self, hashes: np.ndarray) -> None:
        pos = self._positions(hashes).ravel()
        np.bitwise_or.at(
            self.bits, pos >> np.uint64(3), np.left_shift(1, pos & np.uint64(7)).astype(np.uint8)
        )

    def may_contain(self, hashes: np.ndarray) -> np.ndarray:
        """(N,) bool: False means the hash is surely not in the set."""
        if not len(hashes):
            return np.zeros(0, dtype=bool)
        pos = self._positions(hashes)
        hit = (self.bits[pos >> np.uint64(3)] >> (pos & np.uint64(7)).astype(np.uint8)) & 1
        return hit.all(axis=0)


@dataclass
class BloomIndex:
    """The evaluation n-grams as a Bloom filter, with the n-gram lengths the items have."""

    bloom: BloomFilter
    lengths: list[int]

    @classmethod
    def build(
        cls, grams: Iterable[tuple[str, dict[int, np.ndarray]]], total: int, max_bytes: int
    ) -> BloomIndex:
        """From `grams` ((name, n -> hashes) per item), `total` n-grams in all."""
        index = cls(BloomFilter.sized(total, max_bytes), [])
        lengths: set[int] = set()
        for _, item in grams:
            for n, hashes in item.items():
                index.bloom.add(hashes)
                lengths.add(n)
        index.lengths = sorted(lengths)
        return index

    def first_hits(
        self, texts: list[str], grams: Callable[[], Iterable[tuple[str, dict[int, np.ndarray]]]]
    ) -> list[tuple[str, str] | None]:
        """Per text, (item name, matched words) of its first evaluation n-gram, or None, as
        `EvalIndex.first_hit` answers: the filter's candidates of all `texts` are confirmed
        by one pass over the items (`grams()`)."""
        docs = []
        candidates: dict[int, set[int]] = {n: set() for n in self.lengths}
        for text in texts:
            ws = words(text)
            found = {n: ngram_hashes(ws, n) for n in self.lengths}
            maybe = {n: h[self.bloom.may_contain(h)] for n, h in found.items()}
            for n, h in maybe.items():
                candidates[n].update(h.tolist())
            docs.append((ws, found))
        confirmed = first_items(candidates, grams()) if any(candidates.values()) else {}
        return [_first(ws, found, confirmed) for ws, found in docs]

    def save(self, path) -> None:
        """To a path or an open binary file."""
        np.savez(path, bits=self.bloom.bits, k=self.bloom.k, lengths=np.array(self.lengths))

    @classmethod
    def load(cls, path: str) -> BloomIndex:
        data = np.load(path, allow_pickle=False)
        return cls(BloomFilter(data["bits"], int(data["k"])), [int(n) for n in data["lengths"]])


def _first(ws: list[str], found: dict[int, np.ndarray], confirmed: dict) -> tuple[str, str] | None:
    for n, hashes in found.items():  # n ascending, then position: as the sorted index
        table = confirmed.get(n) or {}
        for at, h in enumerate(hashes.tolist()):
            if h in table:
                return table[h], " ".join(ws[at : at + n])
    return None


def first_items(
    candidates: dict[int, set[int]], items: Iterable[tuple[str, dict[int, np.ndarray]]]
) -> dict[int, dict[int, str]]:
    """n -> {hash: name of the first item holding it} for the `candidates` (n -> hashes) that an
    item of `items` ((name, n -> its n-gram hashes)) really holds; the rest were false positives."""
    wanted = {n: np.array(sorted(h), dtype=np.uint64) for n, h in candidates.items() if h}
    found: dict[int, dict[int, str]] = {n: {} for n in wanted}
    for name, grams in items:
        for n, hashes in grams.items():
            table = wanted.get(n)
            if table is None or not len(hashes):
                continue
            pos = np.minimum(np.searchsorted(table, hashes), len(table) - 1)
            for h in hashes[table[pos] == hashes].tolist():
                found[n].setdefault(h, name)
    return found
