"""The document under filtering: its text plus the features several filters share.

Features are computed once per text and reused by every filter; assigning a new `text` (the C4
line rules do) drops them. Tokens are found by regular expressions over the whole text
where that is faster than a loop over words: the filters run on every document.
"""

from __future__ import annotations

import re
from typing import Any

PARAGRAPH_BREAK = re.compile(r"\n{2,}")
# Punctuation and symbols: a token made only of these is not a word (Gopher counts words so).
PUNCTUATION = (
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~¡§«¶·»¿‐‑‒–—―‘’‚“”„†‡•…‰′″‹›※€™←↑→↓"
    "、。〈〉《》「」『』【】〔〕〜・！（），．：；？［］｛｝～"
)
PUNCTUATION_SET = frozenset(PUNCTUATION)
# Lowercased word tokens for n-grams and stop words (letters, digits, underscores).
WORD = re.compile(r"\w+")
# What may end a sentence or a line of prose, in the scripts py3langid knows.
TERMINAL_PUNCTUATION = (".", "!", "?", "…", "。", "！", "？", "؟", "۔", "।", "॥", "።")


class Document:
    """A text being cleaned, with lazily computed features."""

    def __init__(self, text: str, language: str | None = None, **meta: Any):
        self.language = language
        self.language_score: float | None = None
        self.meta = meta
        self.text = text

    @property
    def text(self) -> str:
        return self._text

    @text.setter
    def text(self, value: str) -> None:
        self._text = value
        self._cache: dict[str, Any] = {}

    def _cached(self, key: str, compute) -> Any:
        if key not in self._cache:
            self._cache[key] = compute()
        return self._cache[key]

    @property
    def lines(self) -> list[str]:
        """Every line, blank ones included."""
        return self._cached("lines", lambda: self._text.split("\n"))

    @property
    def nonblank_lines(self) -> list[str]:
        return self._cached("nonblank_lines", lambda: [ln for ln in self.lines if ln.strip()])

    @property
    def paragraphs(self) -> list[str]:
        return self._cached("paragraphs", lambda: PARAGRAPH_BREAK.split(self._text.strip()))

    @property
    def words(self) -> list[str]:
        """Whitespace-separated tokens, punctuation attached (as Gopher's rules read them)."""
        return self._cached("words", self._text.split)

    @property
    def real_word_stats(self) -> tuple[int, int]:
        """(count, characters) of the tokens that are not only punctuation or symbols."""
        return self._cached("real_word_stats", self._real_word_stats)

    def _real_word_stats(self) -> tuple[int, int]:
        punct = [w for w in self.words if PUNCTUATION_SET.issuperset(w)]
        count = len(self.words) - len(punct)
        return count, sum(map(len, self.words)) - sum(map(len, punct))

    @property
    def letter_word_count(self) -> int:
        """Tokens with at least one letter (`isalpha()` answers most tokens in one C call)."""
        return self._cached(
            "letter_words",
            lambda: sum(1 for w in self.words if w.isalpha() or any(c.isalpha() for c in w)),
        )

    @property
    def bare_words(self) -> list[str]:
        """Lowercased word tokens without punctuation (for n-grams and stop words)."""
        return self._cached("bare_words", lambda: WORD.findall(self._text.lower()))
