"""A word bigram language model with interpolated Kneser-Ney smoothing, trained on the reference,
and the word-order score it gives a document (CCNet scores by perplexity under such a model).

A bag of n-grams cannot see word order: text made of the reference's own words in random order
(word salad), or real sentences with their words shuffled, looks like the reference to it. Under
a bigram model of the reference, real text is predicted better with the previous word than
without it; shuffled words are not. The score is that gain, in nats per word:

    order_gain = mean_i [ log P_kn(w_i | w_{i-1}) - log P_cont(w_i) ]

where P_cont is the Kneser-Ney lower-order (continuation) distribution the bigram backs off to
(Chen & Goodman 1998). A word after an unseen context adds 0, so text on other topics is not
penalised for its vocabulary; pairs the reference never shows pull the mean below 0. Everything
is numpy arrays (sorted bigram keys), scored without a Python loop per word.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np

TOKEN = re.compile(r"\w+|[^\w\s]")
UNK, BOS = 0, 1  # reserved ids: an unknown word, the start of a line


def tokens(text: str) -> list[str]:
    """Lower-cased words and single punctuation marks."""
    return TOKEN.findall(text.lower())


def _line_ids(vocab: dict[str, int], text: str) -> np.ndarray:
    """Token ids of `text` with BOS before each line, (N,)."""
    ids: list[int] = []
    get = vocab.get
    for line in text.splitlines():
        words = tokens(line)
        if words:
            ids.append(BOS)
            ids.extend(get(w, UNK) for w in words)
    return np.asarray(ids, dtype=np.int64)


@dataclass
class BigramLM:
    """Interpolated Kneser-Ney bigram model; ids 0 (unknown) and 1 (line start) are reserved."""

    words: list[str]
    keys: np.ndarray  # sorted int64 `prev * V + next` of every seen bigram, (B,)
    counts: np.ndarray  # count of each, (B,)
    context_count: np.ndarray  # c(v) as a context, (V,)
    context_types: np.ndarray  # N1+(v, .), (V,)
    continuation: np.ndarray  # P_cont(w), (V,), sums to 1 with the unknown word's share
    discount: float

    @property
    def vocab(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.words)}

    @classmethod
    def train(cls, texts: list[str], min_count: int = 1) -> BigramLM:
        freq = Counter(w for t in texts for w in tokens(t))
        words = ["<unk>", "<s>"] + sorted(w for w, c in freq.items() if c >= min_count)
        vocab = {w: i for i, w in enumerate(words)}
        v = len(words)
        pairs: list[np.ndarray] = []
        for text in texts:
            ids = _line_ids(vocab, text)
            keep = ids[1:] != BOS  # no pair across a line start
            pairs.append((ids[:-1] * v + ids[1:])[keep])
        keys, counts = np.unique(
            np.concatenate(pairs or [np.zeros(0, np.int64)]), return_counts=True
        )
        prev, nxt = keys // v, keys % v
        n1, n2 = np.sum(counts == 1), np.sum(counts == 2)
        discount = float(n1 / (n1 + 2 * n2)) if n1 else 0.75  # Ney et al.'s estimate
        context_count = np.bincount(prev, weights=counts, minlength=v)
        context_types = np.bincount(prev, minlength=v).astype(np.float64)
        cont = np.bincount(nxt, minlength=v).astype(np.float64) + 0.5  # + a share for any word
        cont[BOS] = 0.0
        return cls(words, keys, counts.astype(np.float64), context_count, context_types,
                   cont / cont.sum(), discount)  # fmt: skip

    def order_gain(self, text: str) -> float:
        """Mean log-probability gain (nats/word) of the previous word; 0.0 for no words."""
        ids = _line_ids(self.vocab_cache, text)
        keep = ids[1:] != BOS
        prev, nxt = ids[:-1][keep], ids[1:][keep]
        if not len(nxt):
            return 0.0
        v = len(self.words)
        found = np.zeros(len(nxt))
        if len(self.keys):
            q = prev * v + nxt
            pos = np.minimum(np.searchsorted(self.keys, q), len(self.keys) - 1)
            found = np.where(self.keys[pos] == q, self.counts[pos], 0.0)
        c = self.context_count[prev]
        p_cont = self.continuation[nxt]
        seen = c > 0
        safe_c = np.where(seen, c, 1.0)
        backoff = self.discount * self.context_types[prev] / safe_c
        p = np.where(
            seen, np.maximum(found - self.discount, 0.0) / safe_c + backoff * p_cont, p_cont
        )
        return float(np.mean(np.log(p) - np.log(p_cont)))

    @property
    def vocab_cache(self) -> dict[str, int]:
        cached = getattr(self, "_vocab", None)
        if cached is None:
            cached = self._vocab = self.vocab
        return cached

    def arrays(self) -> dict[str, np.ndarray]:
        """The model as plain arrays (saved with np.savez: nothing pickled)."""
        return {
            "lm_words": np.array(self.words, dtype=str),
            "lm_keys": self.keys,
            "lm_counts": self.counts,
            "lm_context_count": self.context_count,
            "lm_context_types": self.context_types,
            "lm_continuation": self.continuation,
            "lm_discount": np.array(self.discount),
        }

    @classmethod
    def from_arrays(cls, data) -> BigramLM:
        return cls(
            [str(w) for w in data["lm_words"]],
            data["lm_keys"],
            data["lm_counts"],
            data["lm_context_count"],
            data["lm_context_types"],
            data["lm_continuation"],
            float(data["lm_discount"]),
        )
