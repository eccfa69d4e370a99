"""The C4 rules: line filters that rewrite the text, and document rules that drop it.

Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a Unified Text-to-Text
Transformer", section 2.2, as implemented in TFDS `c4_utils.clean_page` (line checks in that
order). Not implemented: the "bad words" list (LDNOOBW), which C4 downloads and no package ships.
Unlike TFDS, kept lines keep their indentation and paragraph breaks, so code and structure survive
when the line rules are loosened.
"""

from __future__ import annotations

import re

from pydantic import Field

from pipeline.clean.document import Document
from pipeline.clean.filters.rule import FilterResult, RuleFilter
from pipeline.core.base_config import StrictModel

END_MARKS = (".", "?", "!", '"')  # TFDS c4_utils._END_MARKS
ELLIPSIS = "..."
CITATION = re.compile(r"\[\d*\]|\[edit\]|\[citation needed\]", re.IGNORECASE)
POLICY_PHRASES = (
    "terms of use",
    "privacy policy",
    "cookie policy",
    "uses cookies",
    "use of cookies",
    "use cookies",
)
# A sentence ends at terminal punctuation (optionally closed by quotes/brackets) before a space.
SENTENCE_END = re.compile(r"[.!?]+[\"'”’)\]]*(?=\s|$)")


class C4Config(StrictModel):
    """C4 rules (Raffel et al. 2020, section 2.2, as in TFDS c4_utils); line rules edit the text."""

    enabled: bool = True
    """Apply the C4 rules."""
    terminal_punct_lines: bool = True
    """Keep only lines ending in `.`, `!`, `?` or `"` (removes every code line and heading)."""
    min_words_per_line: int = Field(3, ge=0)
    """Lines with fewer words are removed (0 keeps them: short code lines)."""
    max_word_length: int = Field(1000, ge=1)
    """Lines with a longer word are removed."""
    remove_citations: bool = True
    """Remove Wikipedia-style markers such as `[1]`, `[edit]`, `[citation needed]`."""
    javascript_lines: bool = True
    """Remove lines that mention "javascript"."""
    policy_lines: bool = True
    """Remove lines about terms of use, privacy or cookie policies."""
    lorem_ipsum: bool = True
    """Drop documents containing "lorem ipsum": `c4_lorem_ipsum`."""
    curly_bracket: bool = True
    """Drop documents with a `{` in a kept line: `c4_curly_bracket` (C4's anti-code rule)."""
    min_sentences: int = Field(5, ge=0)
    """Drop documents with fewer sentences left after the line rules: `c4_too_few_sentences`."""


class C4Filter(RuleFilter, name="c4", english_only=True, config=C4Config):
    """C4's line rules (terminal punctuation, short lines, javascript, policies, citations) and
    document rules (lorem ipsum, curly brackets, too few sentences)."""

    def filter(self, doc: Document) -> FilterResult:
        kept: list[str] = []
        sentences = 0
        paragraph_break = False
        for raw in doc.lines:
            if not raw.strip():
                paragraph_break = bool(kept)
                continue
            verdict = self._line(raw)
            if isinstance(verdict, tuple):
                return verdict
            if verdict is None:
                continue
            sentences += max(1, len(SENTENCE_END.findall(verdict)))
            sep = ("\n\n" if paragraph_break else "\n") if kept else ""
            kept.append(sep + verdict)
            paragraph_break = False
        if not kept or sentences < self.cfg.min_sentences:
            measured = (
                f"sentences {sentences} in kept lines < min_sentences {self.cfg.min_sentences}"
            )
            return self.drop("c4_too_few_sentences", measured)
        doc.text = "".join(kept)
        return True

    def _line(self, raw: str) -> str | None | tuple[bool, str]:
        """The line to keep (citations removed), None to drop it, or a document verdict."""
        cfg = self.cfg
        words = raw.split()
        if any(len(w) > cfg.max_word_length for w in words):
            return None
        if cfg.remove_citations:
            raw = CITATION.sub("", raw)
        line = raw.strip()
        if cfg.terminal_punct_lines and (not line.endswith(END_MARKS) or line.endswith(ELLIPSIS)):
            return None
        if len(words) < cfg.min_words_per_line:
            return None
        lower = line.lower()
        if cfg.lorem_ipsum and "lorem ipsum" in lower:
            return self.drop("c4_lorem_ipsum", f"line {line[:80]!r} has 'lorem ipsum'")
        if cfg.javascript_lines and "javascript" in lower:
            return None
        if cfg.curly_bracket and "{" in line:
            return self.drop("c4_curly_bracket", f"line {line[:80]!r} has '{{'")
        if cfg.policy_lines and any(p in lower for p in POLICY_PHRASES):
            return None
        return raw.rstrip()
