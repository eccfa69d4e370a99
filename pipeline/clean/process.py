"""One document through the clean steps, inside a worker process.

decode (and repair mojibake) -> extract -> normalize -> language -> quality filters -> PII. A
step that drops the document raises `Dropped`; the whole document runs under a time budget
(`time_budget`), and every step is counted and timed in a `Funnel`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.clean.config import CleanConfig
from pipeline.clean.document import Document
from pipeline.clean.errors import DocumentTimeout, Dropped, time_budget
from pipeline.clean.extract import EXTRACTORS, HTML_TYPES
from pipeline.clean.filters import QualityFilter, build_filters
from pipeline.clean.funnel import Funnel, funnel_steps
from pipeline.clean.language import LanguageFilter
from pipeline.clean.normalize import decode_raw, normalize, repair_raw
from pipeline.clean.pii import PiiRedactor


@dataclass(slots=True)
class Cleaned:
    text: str
    language: str
    language_score: float
    pii: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Rejected:
    reason: str
    detail: str = ""


Outcome = Cleaned | Rejected
Record = tuple[bytes, str | None]
"""What a worker gets per document: the raw UTF-8 bytes and the content type."""


class DocumentCleaner:
    """The per-process state of the clean steps (language model, filters) and their driver."""

    def __init__(self, cfg: CleanConfig):
        self.cfg = cfg
        self.extractor = EXTRACTORS[cfg.extractor]
        self.language = LanguageFilter(
            cfg.languages, cfg.min_language_score, cfg.language_sample_chars
        )
        self.filters: list[QualityFilter] = build_filters(cfg)
        self.steps = funnel_steps(cfg.filters)
        self.filter_languages = (
            frozenset(cfg.filter_languages) if cfg.filter_languages is not None else None
        )
        self.pii = PiiRedactor(cfg.pii) if cfg.pii.enabled else None
        self.budget = cfg.doc_timeout_seconds if cfg.soft_timeout else None
        self._step = ""

    def clean_batch(self, records: list[Record]) -> tuple[list[Outcome], dict[str, Any]]:
        funnel = Funnel(self.steps)
        return [self.clean(raw, ctype, funnel) for raw, ctype in records], funnel.to_json()

    def clean(self, raw: bytes, content_type: str | None, funnel: Funnel) -> Outcome:
        self._step = "decode"
        try:
            with time_budget(self.budget):
                return self._steps(raw, content_type, funnel)
        except Dropped as drop:
            funnel.dropped(self._step, drop.reason)
            return Rejected(drop.reason, drop.detail)
        except DocumentTimeout:
            reason = "extraction_timeout" if self._step == "extract" else "processing_timeout"
            funnel.dropped(self._step, reason)
            return Rejected(reason, f"over {self.cfg.doc_timeout_seconds} s in `{self._step}`")
        except Exception as exc:  # a bug or a library error on one page must not stop the run
            funnel.dropped(self._step, "processing_error")
            return Rejected("processing_error", f"{self._step}: {type(exc).__name__}: {exc}")

    def _steps(self, raw: bytes, content_type: str | None, funnel: Funnel) -> Cleaned:
        plain = (content_type or "").lower() not in HTML_TYPES
        text = self._run(funnel, "decode", self._decode, raw, plain)
        text = self._run(funnel, "extract", self._extract, text, plain)
        text = self._run(funnel, "normalize", self._normalize, text, plain)
        doc = Document(text)
        self._run(funnel, "language", self._check, self.language, doc)
        english = self.filter_languages is None or doc.language in self.filter_languages
        for rule in self.filters:
            if rule.english_only and not english:
                funnel.skipped(rule.name)
            else:
                self._run(funnel, rule.name, self._check, rule, doc)
        pii: dict[str, int] = {}
        if self.pii is None:
            funnel.skipped("pii")
        else:
            doc.text, counts = self._run(funnel, "pii", self.pii.redact, doc.text)
            pii = dict(counts)
        return Cleaned(doc.text, doc.language, doc.language_score, pii)

    def _run(self, funnel: Funnel, step: str, fn: Callable, *args: Any) -> Any:
        self._step = step
        start = time.perf_counter()
        try:
            result = fn(*args)
        finally:
            funnel.timed(step, time.perf_counter() - start)
        funnel.kept(step)
        return result

    def _decode(self, raw: bytes, plain: bool) -> str:
        return repair_raw(decode_raw(raw, self.cfg.max_nontext_ratio), plain)

    def _extract(self, text: str, plain: bool) -> str:
        if not plain:
            text = self.extractor(text)
        if not text or not text.strip():
            raise Dropped("empty_text", "no text after extraction")
        return text

    @staticmethod
    def _normalize(text: str, plain: bool) -> str:
        text = normalize(text, plain)
        if not text.strip():
            raise Dropped("empty_text", "no text after normalization")
        return text

    def _check(self, rule: QualityFilter | LanguageFilter, doc: Document) -> None:
        verdict = rule.filter(doc)
        if verdict is True:
            return
        reason = verdict[1] if isinstance(verdict, tuple) else rule.name
        detail = f"{doc.language} {doc.language_score:.3f}" if rule is self.language else ""
        raise Dropped(reason, detail)


_CLEANER: DocumentCleaner | None = None


def init_worker(cfg: CleanConfig) -> None:
    """Worker process initializer: load the model and build the filters once."""
    global _CLEANER
    _CLEANER = DocumentCleaner(cfg)


def clean_batch(records: list[Record]) -> tuple[list[Outcome], dict[str, Any]]:
    """Worker entry point: the outcome of each record, in order, and the batch's funnel."""
    assert _CLEANER is not None, "init_worker was not called in this process"
    return _CLEANER.clean_batch(records)
