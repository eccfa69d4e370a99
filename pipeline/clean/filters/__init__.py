"""Quality filters: one small class per rule family, each `filter(doc) -> True | (False, reason)`.

`FILTERS` is their order, FineWeb's (Penedo et al. 2024): the cheap length check, then Gopher
repetition, Gopher quality, C4, FineWeb. The clean config's filter sections (`clean.<name>`,
`pipeline/clean/config.py`) and the funnel's steps (`pipeline/clean/funnel.py`) derive from it:
adding a filter is its file (the class and its config class) and one entry here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from pipeline.clean.document import Document
from pipeline.clean.filters.c4 import C4Config, C4Filter
from pipeline.clean.filters.fineweb import FineWebConfig, FineWebFilter
from pipeline.clean.filters.gopher import (
    GopherQualityConfig,
    GopherQualityFilter,
    GopherRepetitionConfig,
    GopherRepetitionFilter,
)
from pipeline.clean.filters.length import LengthConfig, LengthFilter
from pipeline.clean.filters.rule import FilterResult, RuleFilter

if TYPE_CHECKING:
    from pipeline.clean.config import CleanBase

FILTERS: tuple[type[RuleFilter], ...] = (
    LengthFilter,
    GopherRepetitionFilter,
    GopherQualityFilter,
    C4Filter,
    FineWebFilter,
)


class QualityFilter(Protocol):
    name: str
    """The funnel step this filter is counted under."""
    english_only: bool
    """True for rules tuned on English (they run on `filter_languages` only)."""

    def filter(self, doc: Document) -> FilterResult: ...


def build_filters(cfg: CleanBase) -> list[QualityFilter]:
    """The enabled filters of the config's filter sections, in the order they run."""
    sections: list[tuple[type[RuleFilter], Any]] = [(f, getattr(cfg, f.name)) for f in cfg.filters]
    return [f(section) for f, section in sections if section.enabled]


__all__ = [
    "C4Config",
    "C4Filter",
    "FineWebConfig",
    "GopherQualityConfig",
    "GopherRepetitionConfig",
    "LengthConfig",
    "FineWebFilter",
    "FILTERS",
    "FilterResult",
    "GopherQualityFilter",
    "GopherRepetitionFilter",
    "LengthFilter",
    "QualityFilter",
    "RuleFilter",
    "build_filters",
]
