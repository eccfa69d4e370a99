"""Text normalization, word n-gram shingles and the exact-text key, vectorized over a batch.

Near-duplicate shingles follow FineWeb's text simplification (datatrove `simplify_text`): NFKC,
lowercase, punctuation, symbols and whitespace all act as word separators, and every run of
digits becomes `0` (so a page whose numbers changed keeps its shingles). A shingle is `n`
consecutive words; a document with fewer than `n` words is one shingle of all its words.

The exact key is lighter: NFKC, lowercase, leading/trailing whitespace stripped and every
whitespace run one space; punctuation and digits are kept, so the exact pass catches the same text
in another layout or case, never a page with other numbers.

Everything after the per-document NFKC/strip/lower calls (C speed) works on one numpy array of
code points per batch: character classes come from a table built once from `unicodedata`, words are
hashed by a polynomial over code points computed with prefix sums, and shingles combine `n` word
hashes. No Python loop runs per word or per shingle.
"""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

WORD, SEPARATOR, DIGIT, SPACE = 0, 1, 2, 3
DOC_BREAK = "\x00"  # a control character, so a separator: no word spans two documents
_ZERO = np.uint32(ord("0"))
# Odd multipliers of the polynomial hashes (mod 2^64, numpy integer arithmetic wraps).
_CHAR_BASE = 0x9E3779B97F4A7C15
_CHAR_BASE_INV = pow(_CHAR_BASE, -1, 2**64)
_WORD_BASE = np.uint64(0xC2B2AE3D27D4EB4F)


@lru_cache(maxsize=1)
def char_classes() -> np.ndarray:
    """Class of every BMP code point: WORD, SEPARATOR (punctuation, symbols, controls), DIGIT or
    SPACE; code points above the BMP count as WORD characters. Built once per process (~0.2 s)."""
    table = np.zeros(0x10000, dtype=np.uint8)
    for cp in range(0x10000):
        cat = unicodedata.category(chr(cp))
        if cat == "Nd":
            table[cp] = DIGIT
        elif cat[0] == "Z" or chr(cp).isspace():
            table[cp] = SPACE
        elif cat[0] in "PSC" or cp == ord("_"):
            table[cp] = SEPARATOR
    return table


def _classes_of(codes: np.ndarray) -> np.ndarray:
    table = char_classes()
    return np.where(codes < 0x10000, table[np.minimum(codes, 0xFFFF)], WORD).astype(np.uint8)


# MurmurHash3's finalizers: (shift, multiplier, shift, multiplier, shift) per word size.
_FMIX = {
    np.uint32: (16, 0x85EBCA6B, 13, 0xC2B2AE35, 16),
    np.uint64: (33, 0xFF51AFD7ED558CCD, 33, 0xC4CEB9FE1A85EC53, 33),
}


def fmix(h: np.ndarray) -> np.ndarray:
    """MurmurHash3's finalizer (fmix32 or fmix64, by `h`'s dtype): spreads weak low bits (of a
    polynomial hash; of the input hashes datasketch's affine32 scheme pre-mixes)."""
    word = h.dtype.type
    s1, m1, s2, m2, s3 = (word(c) for c in _FMIX[word])
    h = (h ^ (h >> s1)) * m1
    h = (h ^ (h >> s2)) * m2
    return h ^ (h >> s3)


_power_tables: dict[int, np.ndarray] = {}


def _powers(base: int, count: int) -> np.ndarray:
    """base**j mod 2^64 for j < count, from a per-process table grown by doubling."""
    table = _power_tables.get(base)
    if table is None or len(table) < count:
        size = max(count, 2 * len(table) if table is not None else 1 << 20)
        table = np.full(size, base, dtype=np.uint64)
        table[0] = 1
        table = np.cumprod(table, dtype=np.uint64)
        _power_tables[base] = table
    return table[:count]


@dataclass
class ShingleBatch:
    """The shingle hashes of a batch of documents, concatenated: document i owns
    `hashes[offsets[i]:offsets[i + 1]]` (it may own none: an empty text)."""

    hashes: np.ndarray  # (S,) uint64
    offsets: np.ndarray  # (D + 1,) int64

    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    def of(self, i: int) -> np.ndarray:
        return self.hashes[self.offsets[i] : self.offsets[i + 1]]


def _code_points(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Texts joined by DOC_BREAK as one code point array (C,), and the start of each text."""
    joined = DOC_BREAK.join(texts)
    codes = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)  # (C,)
    lengths = np.fromiter((len(t) + 1 for t in texts), dtype=np.int64, count=len(texts))
    return codes, np.cumsum(lengths) - lengths


def _word_spans(classes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) of every run of word characters."""
    is_word = np.concatenate([[False], classes == WORD, [False]])
    edges = np.flatnonzero(is_word[1:] != is_word[:-1])
    return edges[0::2], edges[1::2]


def _word_hashes(codes: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Polynomial hash of each word's code points, from prefix sums: sum_j c_j * B^(j-start)."""
    powers = _powers(_CHAR_BASE, len(codes))  # (C,)
    prefix = np.zeros(len(codes) + 1, dtype=np.uint64)
    np.cumsum(codes.astype(np.uint64) * powers, dtype=np.uint64, out=prefix[1:])
    raw = prefix[ends] - prefix[starts]  # (W,) = sum_j c_j * B^j over the word
    shift = _powers(_CHAR_BASE_INV, len(codes) + 1)[starts]  # B^-start re-bases at the word
    return fmix((raw * shift) ^ (ends - starts).astype(np.uint64))


def _simplified_codes(
    codes: np.ndarray, classes: np.ndarray, doc_starts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every run of digits becomes one `0` (a word character); returns codes, classes, starts."""
    is_digit = classes == DIGIT
    keep = ~(is_digit & np.concatenate([[False], is_digit[:-1]]))  # drop digits after a digit
    removed_before = np.concatenate([[0], np.cumsum(~keep)])[doc_starts]
    codes = np.where(is_digit, _ZERO, codes)[keep]
    classes = np.where(is_digit, WORD, classes)[keep]
    return codes, classes, doc_starts - removed_before


def _exact_keys(codes: np.ndarray, classes: np.ndarray, doc_starts: np.ndarray) -> np.ndarray:
    """blake2b-64 of each (stripped, lowercased) text with every whitespace run as one space."""
    space = classes == SPACE
    keep = ~(space & np.concatenate([[False], space[:-1]]))
    canonical = np.where(space, np.uint32(32), codes)[keep]  # (C',)
    starts = doc_starts - np.concatenate([[0], np.cumsum(~keep)])[doc_starts]
    ends = np.append(starts[1:] - 1, len(canonical))  # each text ends before its DOC_BREAK
    keys = np.empty(len(doc_starts), dtype=np.uint64)
    for i, (lo, hi) in enumerate(zip(starts.tolist(), ends.tolist())):
        digest = hashlib.blake2b(canonical[lo:hi].tobytes(), digest_size=8).digest()
        keys[i] = int.from_bytes(digest, "little")
    return keys


def _shingles(words: np.ndarray, words_per_doc: np.ndarray, ngram_size: int) -> ShingleBatch:
    """Combine `ngram_size` consecutive word hashes of a document into one shingle hash."""
    first_word = np.concatenate([[0], np.cumsum(words_per_doc)[:-1]])
    per_doc = np.where(words_per_doc >= ngram_size, words_per_doc - ngram_size + 1, 0)
    per_doc[(words_per_doc > 0) & (words_per_doc < ngram_size)] = 1  # short: one shingle
    offsets = np.concatenate([[0], np.cumsum(per_doc)]).astype(np.int64)
    shingle_doc = np.repeat(np.arange(len(per_doc)), per_doc)  # (S,)
    start = first_word[shingle_doc] + (np.arange(offsets[-1]) - offsets[shingle_doc])
    width = np.minimum(words_per_doc[shingle_doc], ngram_size)  # (S,) words in each shingle
    acc = np.zeros(len(start), dtype=np.uint64)
    for k in range(ngram_size):
        word = words[np.minimum(start + k, len(words) - 1)] if len(words) else acc
        acc = np.where(k < width, acc * _WORD_BASE + word, acc)
    return ShingleBatch(fmix(acc), offsets)


@dataclass
class DocumentFeatures:
    """What dedup needs of a batch of texts: the exact key and the shingle hashes of each."""

    exact: np.ndarray  # (D,) uint64
    shingles: ShingleBatch


def document_features(
    texts: list[str | None], ngram_size: int, exact: bool = True
) -> DocumentFeatures:
    """Exact keys (unless `exact` is False: zeros) and word `ngram_size`-gram shingle hashes
    (64-bit, duplicates kept) of texts; a null text counts as empty."""
    prepared = [unicodedata.normalize("NFKC", t or "").strip().lower() for t in texts]
    codes, doc_starts = _code_points(prepared)
    classes = _classes_of(codes)
    keys = _exact_keys(codes, classes, doc_starts) if exact else np.zeros(len(texts), np.uint64)
    codes, classes, doc_starts = _simplified_codes(codes, classes, doc_starts)
    word_starts, word_ends = _word_spans(classes)
    words = _word_hashes(codes, word_starts, word_ends)  # (W,)
    word_doc = np.searchsorted(doc_starts, word_starts, side="right") - 1
    words_per_doc = np.bincount(word_doc, minlength=len(texts)).astype(np.int64)
    return DocumentFeatures(keys, _shingles(words, words_per_doc, ngram_size))


def shingle_sets(batch: ShingleBatch) -> list[np.ndarray]:
    """The sorted, distinct shingle hashes of each document of a batch, cut to their top 40
    bits so that one sort of (document << 40 | hash) orders every set at once (a false match
    of two distinct shingles has probability 2^-40: nothing against a Jaccard of thousands)."""
    documents = len(batch.offsets) - 1
    assert documents < 2**24, "shingle_sets: at most 2^24 documents per batch"
    owner = np.repeat(np.arange(documents, dtype=np.uint64), batch.counts())  # (S,)
    keys = np.sort((owner << np.uint64(40)) | (batch.hashes >> np.uint64(24)))
    keys = keys[np.concatenate([[True], keys[1:] != keys[:-1]])]  # distinct per document
    bounds = np.searchsorted(keys >> np.uint64(40), np.arange(1, documents, dtype=np.uint64))
    return np.split(keys & np.uint64(2**40 - 1), bounds)


def shingle_set(text: str | None, ngram_size: int) -> np.ndarray:
    """The sorted, distinct shingle hashes of one text (for true Jaccard)."""
    return shingle_sets(document_features([text], ngram_size, exact=False).shingles)[0]


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Jaccard similarity of two sorted distinct hash sets; two empty sets are identical."""
    if len(a) == 0 and len(b) == 0:
        return 1.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)
