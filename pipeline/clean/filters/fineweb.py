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
            return False, "fineweb_line_punct"
        punct = sum(line.rstrip().endswith(TERMINAL_PUNCTUATION) for line in lines) / len(lines)
        if punct < cfg.min_line_punct_ratio:
            return False, "fineweb_line_punct"
        short = sum(len(line.strip()) <= cfg.short_line_chars for line in lines) / len(lines)
        if short > cfg.max_short_line_ratio:
            return False, "fineweb_short_lines"
        dup_chars = duplicated(lines)[1]
        if dup_chars / max(sum(map(len, lines)), 1) > cfg.max_dup_line_char_ratio:
            return False, "fineweb_dup_line_chars"
        if (len(lines) - 1) / len(doc.words) > cfg.max_newline_word_ratio:
            return False, "fineweb_list_like"
        return True
