"""Word n-grams of normalized text, hashed to 64 bits, and the index of an evaluation set's.

Normalization as lm-evaluation-harness's decontamination and GPT-3's (Brown et al. 2020, C.1):
lower case, punctuation and extra whitespace removed, so a copy that changed case, punctuation or
line breaks still matches. An n-gram's hash is a polynomial over its words' 64-bit hashes
(blake2b), computed for a whole document with `n` vector operations.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import numpy as np

NON_WORD = re.compile(r"[\W_]+")
_BASE = np.uint64(0x100000001B3)  # FNV's 64-bit prime: odd, so no word hash is lost to wrapping


def words(text: str) -> list[str]:
    """The normalized words of `text`: lower case, split on anything that is not a letter/digit."""
    return [w for w in NON_WORD.split(text.lower()) if w]


_DIGESTS: dict[str, bytes] = {}  # word -> its 8-byte digest: a corpus repeats its words
_MAX_CACHED = 1 << 20


def _digest(word: str) -> bytes:
    digest = _DIGESTS.get(word)
    if digest is None:
        if len(_DIGESTS) >= _MAX_CACHED:
            _DIGESTS.clear()
        digest = _DIGESTS[word] = hashlib.blake2b(word.encode(), digest_size=8).digest()
    return digest


def _word_hashes(ws: list[str]) -> np.ndarray:
    return np.frombuffer(b"".join(map(_digest, ws)), dtype="<u8")  # (W,)


def ngram_hashes(ws: list[str], n: int) -> np.ndarray:
    """The hashes of every run of `n` consecutive words (uint64, (W - n + 1,)); empty if W < n."""
    if len(ws) < n:
        return np.zeros(0, dtype=np.uint64)
    h = _word_hashes(ws)
    count = len(ws) - n + 1
    out = np.zeros(count, dtype=np.uint64)
    with np.errstate(over="ignore"):  # arithmetic modulo 2**64, by design
        for k in range(n):
            out = out * _BASE + h[k : k + count]
    return out


@dataclass
class EvalIndex:
    """Sorted n-gram hashes of the evaluation items, by n-gram length, with the item of each."""

    hashes: dict[int, np.ndarray]
    """n -> sorted uint64 hashes; `n` is `ngram`, plus the lengths of short items."""
    items: dict[int, np.ndarray]
    """n -> the item index (into `names`) of each hash."""
    names: list[str]
    """`<eval set file>#<line or row>` of each item."""

    def first_hit(self, text: str) -> tuple[str, str] | None:
        """(item name, the matched words) of the first evaluation n-gram in `text`, or None."""
        ws = words(text)
        for n, table in self.hashes.items():
            found = ngram_hashes(ws, n)
            if not len(found) or not len(table):
                continue
            pos = np.minimum(np.searchsorted(table, found), len(table) - 1)
            hit = np.flatnonzero(table[pos] == found)
            if len(hit):
                at = int(hit[0])
                return self.names[int(self.items[n][pos[at]])], " ".join(ws[at : at + n])
        return None

    def first_hits(self, texts: list[str], grams: object = None) -> list[tuple[str, str] | None]:
        """`first_hit` of each text (the Bloom index's signature; `grams` is not needed)."""
        return [self.first_hit(t) for t in texts]

    def hit_items(self, text: str) -> set[int]:
        """Every item (index into `names`) one of whose n-grams occurs in `text`."""
        ws, found = words(text), set()
        for n, table in self.hashes.items():
            grams = ngram_hashes(ws, n)
            if not len(grams) or not len(table):
                continue
            lo = np.searchsorted(table, grams, side="left")
            hi = np.searchsorted(table, grams, side="right")  # an n-gram several items share
            for a, b in zip(lo[hi > lo].tolist(), hi[hi > lo].tolist()):
                found.update(self.items[n][a:b].tolist())
        return found

    def save(self, path) -> None:
        """To a path or an open binary file."""
        arrays = {f"h{n}": h for n, h in self.hashes.items()}
        arrays |= {f"i{n}": i for n, i in self.items.items()}
        np.savez(path, names=np.array(self.names, dtype=str), **arrays)  # no pickled objects

    @classmethod
    def load(cls, path: str) -> EvalIndex:
        data = np.load(path, allow_pickle=False)
        lengths = sorted(int(k[1:]) for k in data.files if k.startswith("h"))
        return cls(
            {n: data[f"h{n}"] for n in lengths},
            {n: data[f"i{n}"] for n in lengths},
            [str(s) for s in data["names"]],
        )
