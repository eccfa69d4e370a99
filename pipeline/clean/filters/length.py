"""Minimum and maximum text length, in characters."""

from __future__ import annotations

from pipeline.clean.config import LengthConfig
from pipeline.clean.document import Document
from pipeline.clean.filters.rule import FilterResult, RuleFilter


class LengthFilter(RuleFilter, name="length", english_only=False, config=LengthConfig):
    """Drops texts too short to be a document or too long to be one page."""

    def filter(self, doc: Document) -> FilterResult:
        n = len(doc.text)
        if n < self.cfg.min_chars:
            return False, "too_short"
        if n > self.cfg.max_chars:
            return False, "too_long"
        return True
