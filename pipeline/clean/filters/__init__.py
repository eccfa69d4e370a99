"""Quality filters: one small class per rule family, each `filter(doc) -> True | (False, reason)`.

`build_filters(cfg)` returns the enabled ones in the order FineWeb's pipeline runs them (Penedo et
al. 2024): the cheap length check, then Gopher repetition, Gopher quality, C4, FineWeb.
"""

from __future__ import annotations

from typing import Protocol

from pipeline.clean.config import CleanConfig
from pipeline.clean.document import Document
from pipeline.clean.filters.c4 import C4Filter
from pipeline.clean.filters.fineweb import FineWebFilter
from pipeline.clean.filters.gopher import GopherQualityFilter, GopherRepetitionFilter
from pipeline.clean.filters.length import LengthFilter
from pipeline.clean.filters.rule import FilterResult, RuleFilter


class QualityFilter(Protocol):
    name: str
    """The funnel step this filter is counted under."""
    english_only: bool
    """True for rules tuned on English (they run on `filter_languages` only)."""

    def filter(self, doc: Document) -> FilterResult: ...


def build_filters(cfg: CleanConfig) -> list[QualityFilter]:
    """The enabled filters, in the order they run."""
    candidates = [
        (cfg.length.enabled, lambda: LengthFilter(cfg.length)),
        (cfg.gopher_repetition.enabled, lambda: GopherRepetitionFilter(cfg.gopher_repetition)),
        (cfg.gopher_quality.enabled, lambda: GopherQualityFilter(cfg.gopher_quality)),
        (cfg.c4.enabled, lambda: C4Filter(cfg.c4)),
        (cfg.fineweb.enabled, lambda: FineWebFilter(cfg.fineweb)),
    ]
    return [make() for enabled, make in candidates if enabled]


__all__ = [
    "C4Filter",
    "FineWebFilter",
    "FilterResult",
    "GopherQualityFilter",
    "GopherRepetitionFilter",
    "LengthFilter",
    "QualityFilter",
    "RuleFilter",
    "build_filters",
]
