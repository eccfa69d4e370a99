"""Configuration of the clean stage: extraction, language ID, quality filters, PII redaction.

The quality filters' defaults are the published thresholds (Gopher: Rae et al. 2021, appendix A;
C4: Raffel et al. 2020, section 2.2; FineWeb: Penedo et al. 2024, section 3.3). They were tuned
on English prose and drop most code-heavy pages; configs/demo.yaml loosens the rules that punish
code (see the README's "Clean" section), the library keeps the published ones.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from pipeline.base_config import StrictModel

# Gopher's stop words (Rae et al. 2021, A.1.1): a document needs at least two of them.
GOPHER_STOP_WORDS = ["the", "be", "to", "of", "and", "that", "have", "with"]


class LengthConfig(StrictModel):
    """Minimum and maximum length of the extracted text, in characters (all languages)."""

    enabled: bool = True
    """Apply the length filter."""
    min_chars: int = Field(100, ge=0)
    """Texts shorter than this are dropped as `too_short`."""
    max_chars: int = Field(1_000_000, ge=1)
    """Texts longer than this are dropped as `too_long`."""


class GopherQualityConfig(StrictModel):
    """Gopher quality rules (Rae et al. 2021, appendix A.1.1); the defaults are the paper's."""

    enabled: bool = True
    """Apply the Gopher quality rules."""
    min_words: int = Field(50, ge=0)
    """Fewer words (tokens that are not only punctuation) than this: `gopher_word_count`."""
    max_words: int = Field(100_000, ge=1)
    """More words than this: `gopher_word_count`."""
    min_mean_word_length: float = Field(3.0, ge=0)
    """Mean word length below this: `gopher_mean_word_length`."""
    max_mean_word_length: float = Field(10.0, ge=0)
    """Mean word length above this: `gopher_mean_word_length`."""
    max_symbol_word_ratio: float = Field(0.1, ge=0)
    """`#` or ellipses per word above this: `gopher_symbol_ratio` (code comments count here)."""
    max_bullet_lines_ratio: float = Field(0.9, ge=0, le=1)
    """Share of lines starting with a bullet above this: `gopher_bullet_lines`."""
    max_ellipsis_lines_ratio: float = Field(0.3, ge=0, le=1)
    """Share of lines ending with an ellipsis above this: `gopher_ellipsis_lines`."""
    min_alpha_words_ratio: float = Field(0.8, ge=0, le=1)
    """Share of words with a letter below this: `gopher_alpha_words` (code often falls here)."""
    min_stop_words: int = Field(2, ge=0)
    """Distinct stop words fewer than this: `gopher_stop_words`."""
    stop_words: list[str] = Field(default_factory=lambda: list(GOPHER_STOP_WORDS))
    """The stop words counted by `min_stop_words`."""


class GopherRepetitionConfig(StrictModel):
    """Gopher repetition rules (Rae et al. 2021, table A1); the defaults are the paper's."""

    enabled: bool = True
    """Apply the Gopher repetition rules."""
    max_dup_line_frac: float = Field(0.30, ge=0, le=1)
    """Share of lines that repeat an earlier line: `gopher_dup_lines`."""
    max_dup_para_frac: float = Field(0.30, ge=0, le=1)
    """Share of paragraphs that repeat an earlier paragraph: `gopher_dup_paragraphs`."""
    max_dup_line_char_frac: float = Field(0.20, ge=0, le=1)
    """Share of characters in repeated lines: `gopher_dup_line_chars`."""
    max_dup_para_char_frac: float = Field(0.20, ge=0, le=1)
    """Share of characters in repeated paragraphs: `gopher_dup_paragraph_chars`."""
    max_top_ngram_char_frac: dict[int, float] = Field(
        default_factory=lambda: {2: 0.20, 3: 0.18, 4: 0.16}
    )
    """n -> share of word characters in the most frequent n-gram: `gopher_top_<n>gram`."""
    max_dup_ngram_char_frac: dict[int, float] = Field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10}
    )
    """n -> share of word characters inside repeated n-grams: `gopher_dup_<n>gram`."""


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


class PiiConfig(StrictModel):
    """PII redaction on kept documents: e-mails, IP addresses, phone numbers."""

    enabled: bool = True
    """Redact PII in kept documents."""
    emails: bool = True
    """Replace e-mail addresses with `email_placeholder`."""
    ips: bool = True
    """Replace IPv4/IPv6 addresses (validated by `ipaddress`) with `ip_placeholder`."""
    ip_scope: Literal["public", "all"] = "public"
    """`public`: only globally routable IPs (private, loopback, example ranges name nobody)."""
    phones: bool = True
    """Replace phone numbers found by the `phonenumbers` library with `phone_placeholder`."""
    phone_region: str | None = None
    """None: only `+CC ...` numbers; a region (`US`) adds national ones (and false hits in code)."""
    email_placeholder: str = "<EMAIL>"
    """Replacement for an e-mail address."""
    ip_placeholder: str = "<IP>"
    """Replacement for an IP address."""
    phone_placeholder: str = "<PHONE>"
    """Replacement for a phone number."""


class CleanConfig(StrictModel):
    """How ingested records become clean text documents."""

    workers: int = Field(2, ge=1)
    """Worker processes; batches of documents are spread over them."""
    extractor: Literal["resiliparse", "trafilatura"] = "resiliparse"
    """HTML to text: resiliparse (fast, main-content heuristics) or trafilatura (precise, slow)."""
    max_raw_bytes: int = Field(5_000_000, ge=1024)
    """Records whose raw HTML/text is larger are rejected as `too_large` without being parsed."""
    doc_timeout_seconds: float = Field(5.0, gt=0)
    """Time budget of one document; beyond it the document is rejected as `extraction_timeout`."""
    soft_timeout: bool = True
    """Interrupt a slow document in its worker (SIGALRM); off: only the hard limit kills it."""
    max_nontext_ratio: float = Field(0.01, ge=0, le=1)
    """Share of control/replacement characters in a raw record that makes it `binary_content`."""
    languages: list[str] | None = Field(default_factory=lambda: ["en"])
    """Languages kept (ISO 639-1 codes of py3langid); null keeps every language."""
    min_language_score: float = Field(0.65, ge=0, le=1)
    """Documents in a kept language with a lower probability are rejected as `language_score`."""
    language_sample_chars: int = Field(2000, ge=100)
    """Language ID reads this many characters from the start of the text (its cost is linear)."""
    filter_languages: list[str] | None = Field(default_factory=lambda: ["en"])
    """Languages the (English) Gopher/C4/FineWeb rules run on (null: all); others: length only."""
    length: LengthConfig = Field(default_factory=LengthConfig)
    """Length filter."""
    gopher_repetition: GopherRepetitionConfig = Field(default_factory=GopherRepetitionConfig)
    """Gopher repetition filter."""
    gopher_quality: GopherQualityConfig = Field(default_factory=GopherQualityConfig)
    """Gopher quality filter."""
    c4: C4Config = Field(default_factory=C4Config)
    """C4 line and document rules."""
    fineweb: FineWebConfig = Field(default_factory=FineWebConfig)
    """FineWeb heuristics."""
    pii: PiiConfig = Field(default_factory=PiiConfig)
    """PII redaction."""
    unit_documents: int = Field(1000, ge=1)
    """Input rows per work unit; a unit is the resume granularity and writes one output shard."""
    batch_documents: int = Field(8, ge=1)
    """Documents sent to a worker at a time."""
    compression: Literal["zstd", "lz4", "none"] = "zstd"
    """Compression of the Arrow IPC output shards."""

    @field_validator("languages", "filter_languages")
    @classmethod
    def _known_languages(cls, codes: list[str] | None) -> list[str] | None:
        # At config load, not hours later in the clean stage; py3langid's labels, without its model.
        from pipeline.clean.language import KNOWN_LANGUAGES

        unknown = sorted(set(codes or ()) - KNOWN_LANGUAGES)
        if unknown:
            known = " ".join(sorted(KNOWN_LANGUAGES))
            raise ValueError(f"unknown language code(s) {unknown}; the valid codes are: {known}")
        return codes
