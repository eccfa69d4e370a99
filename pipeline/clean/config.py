"""Configuration of the clean stage: extraction, language ID, quality filters, PII redaction.

The quality filters' defaults are the published thresholds (Gopher: Rae et al. 2021, appendix A;
C4: Raffel et al. 2020, section 2.2; FineWeb: Penedo et al. 2024, section 3.3). They were tuned
on English prose and drop most code-heavy pages; configs/demo.yaml loosens the rules that punish
code (see the README's "Clean" section), the library keeps the published ones.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, create_model, field_validator

from pipeline.clean.filters import FILTERS
from pipeline.clean.filters.rule import RuleFilter
from pipeline.core.base_config import StrictModel


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


class CleanBase(StrictModel):
    """What every clean config has besides its fields: its filters and its checks."""

    filters: ClassVar[tuple[type[RuleFilter], ...]] = ()
    """The quality filters whose sections the config has (`clean_config_model`), in order."""

    @field_validator("languages", "filter_languages", check_fields=False)
    @classmethod
    def _known_languages(cls, codes: list[str] | None) -> list[str] | None:
        # At config load, not hours later in the clean stage; py3langid's labels, without its model.
        from pipeline.clean.language import KNOWN_LANGUAGES

        unknown = sorted(set(codes or ()) - KNOWN_LANGUAGES)
        if unknown:
            known = " ".join(sorted(KNOWN_LANGUAGES))
            raise ValueError(f"unknown language code(s) {unknown}; the valid codes are: {known}")
        return codes


class CleanSettings(CleanBase):
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
    pii: PiiConfig = Field(default_factory=PiiConfig)
    """PII redaction."""
    unit_documents: int = Field(1000, ge=1)
    """Input rows per work unit; a unit is the resume granularity and writes one output shard."""
    batch_documents: int = Field(8, ge=1)
    """Documents sent to a worker at a time."""
    compression: Literal["zstd", "lz4", "none"] = "zstd"
    """Compression of the Arrow IPC output shards."""


def clean_config_model(filters: tuple[type[RuleFilter], ...]) -> type[CleanBase]:
    """The clean stage's config: `CleanSettings` with one section per quality filter
    (`clean.<filter.name>`, the filter's own config class), after `filter_languages`, in the
    filters' order."""
    fields: dict[str, Any] = {}
    for key, info in CleanSettings.model_fields.items():
        fields[key] = (info.annotation, info)
        if key == "filter_languages":
            for f in filters:
                doc = (f.config.__doc__ or f.name).strip().splitlines()[0]
                fields[f.name] = (f.config, Field(default_factory=f.config, description=doc))
    model = create_model(
        "CleanConfig",
        __base__=CleanBase,
        __module__=__name__,
        __doc__=CleanSettings.__doc__,
        **fields,
    )
    model.filters = filters
    return model


CleanConfig = clean_config_model(FILTERS)
