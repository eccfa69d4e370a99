"""The base of the rule filters: a rule family's name, its language scope and its settings."""

from __future__ import annotations

from typing import Any, ClassVar

from pipeline.clean.document import Document

FilterResult = bool | tuple[bool, str]


class RuleFilter:
    """One rule family: `filter(doc)` keeps a document (True) or drops it with a reason.

    A subclass names itself in its class line, `class C4Filter(RuleFilter, name="c4",
    english_only=True, config=C4Config)`, and is built with its settings (`config()`'s
    defaults when none are given) in `self.cfg`.
    """

    name: ClassVar[str]
    """The funnel step the filter is counted under (the reason when a rule gives none)."""
    english_only: ClassVar[bool]
    """True for rules tuned on English (they run on `clean.filter_languages` only)."""
    config: ClassVar[type]

    def __init_subclass__(cls, *, name: str, english_only: bool, config: type, **kw: Any):
        super().__init_subclass__(**kw)
        cls.name, cls.english_only, cls.config = name, english_only, config

    def __init__(self, cfg: Any = None):
        self.cfg = cfg if cfg is not None else self.config()

    measured: str = ""
    """What the rule measured on the last document it dropped, against its threshold (`words 23 <
    min_words 50`): the clean stage's examples show it (`pipeline/clean/explain.py`); the ledger
    does not hold it."""

    def filter(self, doc: Document) -> FilterResult:
        raise NotImplementedError

    def drop(self, reason: str, measured: str) -> tuple[bool, str]:
        """The verdict dropping a document as `reason`, remembering what was `measured`."""
        self.measured = measured
        return False, reason
