"""The Gopher rules: quality heuristics and repetition removal.

Rae et al. 2021, "Scaling Language Models: Methods, Analysis & Insights from Training Gopher",
appendix A.1.1 (quality) and table A1 (repetition). Thresholds live in the config; these classes
only state the rules. The paper names no tokenizer: word counts and ratios use whitespace
tokens, n-grams and stop words use lowercased runs of letters and digits (datatrove uses NLTK's
tokenizer, which gives about the same words several times slower).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from pydantic import Field

from pipeline.clean.document import Document
from pipeline.clean.filters.rule import FilterResult, RuleFilter
from pipeline.core.base_config import StrictModel

BULLETS = ("•", "-", "*", "‣", "◦", "▪", "●", "–")
ELLIPSES = ("...", "…")

# Gopher's stop words (Rae et al. 2021, A.1.1): a document needs at least two of them.
GOPHER_STOP_WORDS = ["the", "be", "to", "of", "and", "that", "have", "with"]


class GopherQualityConfig(StrictModel):
    """Gopher quality rules (Rae et al. 2021, appendix A.1.1); the defaults are the paper's."""

    enabled: bool = True
    """Apply the Gopher quality rules."""
    min_words: int = Field(50, ge=0)
    """Fewer words (tokens that are not only punctuation) than this: `gopher_word_count`."""
    max_words: int = Field(100_000, ge=1)
    """More words than this: `gopher_word_count`."""
    min_mean_word_length: float = Field(3.0, ge=0)
    """Mean word length below this: `gopher_mean_word_length`."""
    max_mean_word_length: float = Field(10.0, ge=0)
    """Mean word length above this: `gopher_mean_word_length`."""
    max_symbol_word_ratio: float = Field(0.1, ge=0)
    """`#` or ellipses per word above this: `gopher_symbol_ratio` (code comments count here)."""
    max_bullet_lines_ratio: float = Field(0.9, ge=0, le=1)
    """Share of lines starting with a bullet above this: `gopher_bullet_lines`."""
    max_ellipsis_lines_ratio: float = Field(0.3, ge=0, le=1)
    """Share of lines ending with an ellipsis above this: `gopher_ellipsis_lines`."""
    min_alpha_words_ratio: float = Field(0.8, ge=0, le=1)
    """Share of words with a letter below this: `gopher_alpha_words` (code often falls here)."""
    min_stop_words: int = Field(2, ge=0)
    """Distinct stop words fewer than this: `gopher_stop_words`."""
    stop_words: list[str] = Field(default_factory=lambda: list(GOPHER_STOP_WORDS))
    """The stop words counted by `min_stop_words`."""


class GopherRepetitionConfig(StrictModel):
    """Gopher repetition rules (Rae et al. 2021, table A1); the defaults are the paper's."""

    enabled: bool = True
    """Apply the Gopher repetition rules."""
    max_dup_line_frac: float = Field(0.30, ge=0, le=1)
    """Share of lines that repeat an earlier line: `gopher_dup_lines`."""
    max_dup_para_frac: float = Field(0.30, ge=0, le=1)
    """Share of paragraphs that repeat an earlier paragraph: `gopher_dup_paragraphs`."""
    max_dup_line_char_frac: float = Field(0.20, ge=0, le=1)
    """Share of characters in repeated lines: `gopher_dup_line_chars`."""
    max_dup_para_char_frac: float = Field(0.20, ge=0, le=1)
    """Share of characters in repeated paragraphs: `gopher_dup_paragraph_chars`."""
    max_top_ngram_char_frac: dict[int, float] = Field(
        default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16}
    )
    """n -> share of word characters in the most frequent n-gram: `gopher_top_<n>gram`."""
    max_dup_ngram_char_frac: dict[int, float] = Field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
    )
    """n -> share of word characters inside repeated n-grams: `gopher_dup_<n>gram`."""


class GopherQualityFilter(
    RuleFilter, name="gopher_quality", english_only=True, config=GopherQualityConfig
):
    """Word count, word length, symbol and bullet ratios, alphabetic words, stop words."""

    def __init__(self, cfg: GopherQualityConfig | None = None):
        super().__init__(cfg)
        self.stop_words = frozenset(w.lower() for w in self.cfg.stop_words)

    def filter(self, doc: Document) -> FilterResult:
        for rule in (self._size, self._symbols, self._lines, self._alpha, self._stop_words):
            reason = rule(doc)
            if reason:
                return False, reason
        return True

    def _size(self, doc: Document) -> str | None:
        cfg = self.cfg
        count, chars = doc.real_word_stats
        if not count or not cfg.min_words <= count <= cfg.max_words:
            self.measured = f"words {count} not in [min_words {cfg.min_words}, {cfg.max_words}]"
            return "gopher_word_count"
        mean = chars / count
        if not cfg.min_mean_word_length <= mean <= cfg.max_mean_word_length:
            self.measured = (
                f"mean word length {mean:.2f} not in [{cfg.min_mean_word_length}, "
                f"{cfg.max_mean_word_length}]"
            )
            return "gopher_mean_word_length"
        return None

    def _symbols(self, doc: Document) -> str | None:
        n_words = len(doc.words)
        hashes = doc.text.count("#")
        ellipses = sum(doc.text.count(e) for e in ELLIPSES)
        ratio = max(hashes, ellipses) / n_words
        if ratio > self.cfg.max_symbol_word_ratio:
            self.measured = (
                f"symbols per word {ratio:.3f} > max_symbol_word_ratio "
                f"{self.cfg.max_symbol_word_ratio}"
            )
            return "gopher_symbol_ratio"
        return None

    def _lines(self, doc: Document) -> str | None:
        lines = [line.strip() for line in doc.nonblank_lines]
        bullets = sum(line.startswith(BULLETS) for line in lines) / len(lines)
        if bullets > self.cfg.max_bullet_lines_ratio:
            self.measured = f"bullet lines {bullets:.3f} > {self.cfg.max_bullet_lines_ratio}"
            return "gopher_bullet_lines"
        ellipsis_lines = sum(line.endswith(ELLIPSES) for line in lines) / len(lines)
        if ellipsis_lines > self.cfg.max_ellipsis_lines_ratio:
            limit = self.cfg.max_ellipsis_lines_ratio
            self.measured = f"ellipsis lines {ellipsis_lines:.3f} > {limit}"
            return "gopher_ellipsis_lines"
        return None

    def _alpha(self, doc: Document) -> str | None:
        alpha = doc.letter_word_count / len(doc.words)
        if alpha < self.cfg.min_alpha_words_ratio:
            self.measured = (
                f"words with a letter {alpha:.3f} < min_alpha_words_ratio "
                f"{self.cfg.min_alpha_words_ratio}"
            )
            return "gopher_alpha_words"
        return None

    def _stop_words(self, doc: Document) -> str | None:
        found = len(self.stop_words.intersection(doc.bare_words))
        if found < self.cfg.min_stop_words:
            self.measured = f"stop words {found} < min_stop_words {self.cfg.min_stop_words}"
            return "gopher_stop_words"
        return None


def duplicated(items: Sequence[str]) -> tuple[int, int]:
    """How many items repeat an earlier one, and how many characters those repeats hold."""
    seen: set[str] = set()
    count = chars = 0
    for item in items:
        if item in seen:
            count += 1
            chars += len(item)
        else:
            seen.add(item)
    return count, chars


class WordNgrams:
    """Word n-grams of one text as 64-bit rolling hashes, for counting repeats in numpy.

    A Python tuple per n-gram costs ~10x more; a hash collision (about 2^-64 per pair) at worst
    makes one document look a little more repetitive than it is.
    """

    def __init__(self, words: list[str]):
        # Python's string hash (computed in C) as the word id: equal words, equal ids.
        self.ids = np.fromiter(map(hash, words), dtype=np.int64, count=len(words)).view(np.uint64)
        self.word_chars = np.fromiter(map(len, words), dtype=np.int64, count=len(words))
        self.total_chars = int(self.word_chars.sum())
        self._hashes = {1: self.ids}

    def hashes(self, n: int) -> np.ndarray:
        """hash[i] identifies words[i : i + n]; built from the (n-1)-gram hashes."""
        if n not in self._hashes:
            prev = self.hashes(n - 1)
            with np.errstate(over="ignore"):  # wrapping uint64 arithmetic is the point
                self._hashes[n] = prev[:-1] * np.uint64(1_000_003) + self.ids[n - 1 :]
        return self._hashes[n]

    def span_chars(self, n: int) -> np.ndarray:
        """Characters of words[i : i + n] for every i."""
        cum = np.concatenate(([0], np.cumsum(self.word_chars)))
        return cum[n:] - cum[:-n]


def top_ngram_chars(grams: WordNgrams, n: int) -> int:
    """Characters covered by every occurrence of the most frequent word n-gram."""
    h = grams.hashes(n)
    if not len(h):
        return 0
    _, first, counts = np.unique(h, return_index=True, return_counts=True)
    best = counts == counts.max()  # ties: the longest of the most frequent n-grams
    return int((counts[best] * grams.span_chars(n)[first[best]]).max())


def duplicated_ngram_chars(grams: WordNgrams, n: int) -> int:
    """Characters in n-grams that repeat an earlier one, read left to right; after a repeat the
    walk jumps n words, so overlapping repeats are not counted twice (datatrove's reading of
    the rule, which FineWeb used).

    Only n-grams occurring more than once can ever be a repeat, so the walk visits just those.
    """
    h = grams.hashes(n)
    _, inverse, counts = np.unique(h, return_inverse=True, return_counts=True)
    candidates = np.flatnonzero(counts[inverse] > 1)
    if not len(candidates):
        return 0
    spans = grams.span_chars(n)
    seen: set[int] = set()
    chars = position = 0
    for i, key in zip(candidates.tolist(), h[candidates].tolist()):
        if i < position:
            continue  # inside a repeat already counted
        if key in seen:
            chars += int(spans[i])
            position = i + n
        else:
            seen.add(key)
    return chars


class GopherRepetitionFilter(
    RuleFilter, name="gopher_repetition", english_only=True, config=GopherRepetitionConfig
):
    """Repeated lines, paragraphs and word n-grams (boilerplate, spam, generated pages)."""

    def filter(self, doc: Document) -> FilterResult:
        reason = self._blocks(doc) or self._ngrams(doc)
        return (False, reason) if reason else True

    def _blocks(self, doc: Document) -> str | None:
        total = max(len(doc.text), 1)
        cfg = self.cfg
        for kind, items, max_frac, max_chars in (
            ("paragraphs", doc.paragraphs, cfg.max_dup_para_frac, cfg.max_dup_para_char_frac),
            ("lines", doc.nonblank_lines, cfg.max_dup_line_frac, cfg.max_dup_line_char_frac),
        ):
            count, chars = duplicated(items)
            if count / max(len(items), 1) > max_frac:
                share = count / max(len(items), 1)
                self.measured = f"repeated {kind} {count}/{len(items)} = {share:.3f} > {max_frac}"
                return f"gopher_dup_{kind}"
            if chars / total > max_chars:
                self.measured = f"chars in repeated {kind} {chars / total:.3f} > {max_chars}"
                return f"gopher_dup_{kind[:-1]}_chars"
        return None

    def _ngrams(self, doc: Document) -> str | None:
        grams = WordNgrams(doc.bare_words)
        total = grams.total_chars
        if not total:
            return None
        for n, max_frac in sorted(self.cfg.max_top_ngram_char_frac.items()):
            share = top_ngram_chars(grams, n) / total
            if share > max_frac:
                self.measured = f"chars in the top {n}-gram {share:.3f} > {max_frac}"
                return f"gopher_top_{n}gram"
        for n, max_frac in sorted(self.cfg.max_dup_ngram_char_frac.items()):
            share = duplicated_ngram_chars(grams, n) / total
            if share > max_frac:
                self.measured = f"chars in repeated {n}-grams {share:.3f} > {max_frac}"
                return f"gopher_dup_{n}gram"
        return None
