"""Minimum and maximum text length, in characters."""

from __future__ import annotations

from pipeline.clean.config import LengthConfig
from pipeline.clean.document import Document


class LengthFilter:
    """Drops texts too short to be a document or too long to be one page."""

    name = "length"
    english_only = False

    def __init__(self, cfg: LengthConfig | None = None):
        self.cfg = cfg or LengthConfig()

    def filter(self, doc: Document) -> bool | tuple[bool, str]:
        n = len(doc.text)
        if n < self.cfg.min_chars:
            return False, "too_short"
        if n > self.cfg.max_chars:
            return False, "too_long"
        return True
