"""Minimum and maximum text length, in characters."""

from __future__ import annotations

from pydantic import Field

from pipeline.clean.document import Document
from pipeline.clean.filters.rule import FilterResult, RuleFilter
from pipeline.core.base_config import StrictModel


class LengthConfig(StrictModel):
    """Minimum and maximum length of the extracted text, in characters (all languages)."""

    enabled: bool = True
    """Apply the length filter."""
    min_chars: int = Field(100, ge=0)
    """Texts shorter than this are dropped as `too_short`."""
    max_chars: int = Field(1_000_000, ge=1)
    """Texts longer than this are dropped as `too_long`."""


class LengthFilter(RuleFilter, name="length", english_only=False, config=LengthConfig):
    """Drops texts too short to be a document or too long to be one page."""

    def filter(self, doc: Document) -> FilterResult:
        n = len(doc.text)
        if n < self.cfg.min_chars:
            return self.drop("too_short", f"chars {n} < min_chars {self.cfg.min_chars}")
        if n > self.cfg.max_chars:
            return self.drop("too_long", f"chars {n} > max_chars {self.cfg.max_chars}")
        return True
