"""What a reader yields for each input record: a document, a rejection or a skipped record."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

DOCUMENT_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("url", pa.string()),
        ("source", pa.string()),
        ("fetch_date", pa.timestamp("s", tz="UTC")),
        ("content_type", pa.string()),
        ("charset", pa.string()),
        ("http_status", pa.int16()),
        ("raw", pa.large_string()),
        ("text", pa.large_string()),
    ]
)


@dataclass(slots=True)
class Doc:
    row: dict[str, Any]
    chars: int
    """Characters of `raw` (the shard writer's size budget; `raw` may be its UTF-8 bytes)."""


@dataclass(slots=True)
class Reject:
    id: str | None
    url: str | None
    reason: str
    detail: str = ""


@dataclass(slots=True)
class Skip:
    """A record that is not a document by nature (request, warcinfo, metadata...): counted only."""

    kind: str


def stable_id(*parts: object) -> str:
    """A stable id for records that carry none (JSONL/Parquet rows): hash of where and what."""
    h = hashlib.sha256("\x1f".join(str(p) for p in parts).encode("utf-8", "replace"))
    return h.hexdigest()[:32]


class BadField(ValueError):
    """A field of one record that cannot be stored; the record is rejected with `reason`."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def parse_date(value: Any) -> datetime | None:
    """ISO-8601 strings, datetimes or epoch seconds to aware UTC; None if unparseable text.

    Raises BadField(`bad_date`) for a number no timestamp can hold (1e20, NaN, inf).
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        try:
            return datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError) as exc:
            raise BadField("bad_date", f"date {value!r} is not a valid epoch time: {exc}") from None
    try:
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def check_text(name: str, value: str | None) -> str | None:
    """`value` if Arrow can store it as UTF-8; a lone surrogate (`"\\ud800"` in JSON) cannot."""
    if value is not None and not value.isascii():  # ASCII is valid UTF-8: skip the copy
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            detail = f"`{name}` is not valid Unicode: {exc.reason} at {exc.start}"
            raise BadField("bad_text", detail) from None
    return value


def document(
    id: str,
    url: str | None,
    source: str,
    raw: str | bytes,
    content_type: str,
    fetch_date: Any = None,
    charset: str | None = None,
    http_status: int | None = None,
    *,
    chars: int | None = None,
) -> Doc:
    """A document row whose every field fits DOCUMENT_SCHEMA; raises BadField otherwise.

    Checked here, per record, because a bad value that reached the shard writer would fail the
    whole batch (and the file) when it is flushed. `raw` as bytes must be valid UTF-8 (a payload
    that decoded strictly as UTF-8), stored as it is, and `chars` its length in characters.
    """
    if http_status is not None and not -(2**15) <= http_status < 2**15:
        raise BadField("bad_field", f"HTTP status {http_status} out of range")
    return Doc(
        {
            "id": check_text("id", id),
            "url": check_text("url", url),
            "source": check_text("source", source),
            "fetch_date": parse_date(fetch_date),
            "content_type": check_text("content_type", content_type),
            "charset": check_text("charset", charset),
            "http_status": http_status,
            "raw": raw if isinstance(raw, bytes) else check_text("text", raw),
            "text": None,  # filled by the clean stage
        },
        len(raw) if chars is None else chars,
    )
