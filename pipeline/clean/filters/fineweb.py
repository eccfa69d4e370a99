"""FineWeb's own heuristics, added on top of Gopher and C4.

Penedo et al. 2024, "The FineWeb Datasets: Decanting the Web for the Finest Text Data at Scale",
section 3.3 (thresholds in the config). Lines are the non-blank lines: the paper ran on
trafilatura's output, which has no blank lines, while this stage keeps paragraph breaks as blank
lines; counting those would make every paragraph look like a list item.
"""

from __future__ import annotations

from pydantic import Field

from pipeline.clean.document import TERMINAL_PUNCTUATION, Document
from pipeline.clean.filters.gopher import duplicated
from pipeline.clean.filters.rule import FilterResult, RuleFilter
from pipeline.core.base_config import StrictModel


class FineWebConfig(StrictModel):
    """FineWeb's own heuristics (Penedo et al. 2024, section 3.3); the defaults are the paper's."""

    enabled: bool = True
    """Apply the FineWeb heuristics."""
    min_line_punct_ratio: float = Field(0.12, ge=0, le=1)
    """Share of lines ending in terminal punctuation below this: `fineweb_line_punct`."""
    max_short_line_ratio: float = Field(0.67, ge=0, le=1)
    """Share of lines of at most `short_line_chars` above this: `fineweb_short_lines`."""
    short_line_chars: int = Field(30, ge=1)
    """A line this long or shorter counts as short."""
    max_dup_line_char_ratio: float = Field(0.01, ge=0, le=1)
    """Share of characters in lines repeating an earlier line: `fineweb_dup_line_chars`."""
    max_newline_word_ratio: float = Field(0.3, ge=0)
    """Newlines per word above this (list-like pages): `fineweb_list_like`."""


class FineWebFilter(RuleFilter, name="fineweb", english_only=True, config=FineWebConfig):
    """Lines ending in punctuation, short lines, repeated lines, list-like pages."""

    def filter(self, doc: Document) -> FilterResult:
        cfg = self.cfg
        lines = doc.nonblank_lines
        if not lines or not doc.words:
            return self.drop("fineweb_line_punct", "no lines or no words")
        punct = sum(line.rstrip().endswith(TERMINAL_PUNCTUATION) for line in lines) / len(lines)
        if punct < cfg.min_line_punct_ratio:
            measured = f"line punct ratio {punct:.3f} < min_line_punct_ratio"
            return self.drop("fineweb_line_punct", f"{measured} {cfg.min_line_punct_ratio}")
        short = sum(len(line.strip()) <= cfg.short_line_chars for line in lines) / len(lines)
        if short > cfg.max_short_line_ratio:
            measured = f"short line ratio {short:.3f} > max_short_line_ratio"
            return self.drop("fineweb_short_lines", f"{measured} {cfg.max_short_line_ratio}")
        dup_chars = duplicated(lines)[1]
        dup = dup_chars / max(sum(map(len, lines)), 1)
        if dup > cfg.max_dup_line_char_ratio:
            measured = f"dup line char ratio {dup:.3f} > max_dup_line_char_ratio"
            return self.drop("fineweb_dup_line_chars", f"{measured} {cfg.max_dup_line_char_ratio}")
        newlines = (len(lines) - 1) / len(doc.words)
        if newlines > cfg.max_newline_word_ratio:
            measured = f"newlines per word {newlines:.3f} > max_newline_word_ratio"
            return self.drop("fineweb_list_like", f"{measured} {cfg.max_newline_word_ratio}")
        return True
