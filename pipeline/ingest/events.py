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


def parse_date(value: Any) -> datetime | None:
    """ISO-8601 strings, datetimes or epoch seconds to aware UTC; None if unparseable."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, int | float):
        return datetime.fromtimestamp(value, tz=UTC)
    try:
        parsed = datetime.fromisoformat(str(value).strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def document(
    id: str,
    url: str | None,
    source: str,
    raw: str,
    content_type: str,
    fetch_date: Any = None,
    charset: str | None = None,
    http_status: int | None = None,
) -> Doc:
    return Doc(
        {
            "id": id,
            "url": url,
            "source": source,
            "fetch_date": parse_date(fetch_date),
            "content_type": content_type,
            "charset": charset,
            "http_status": http_status,
            "raw": raw,
            "text": None,  # filled by the clean stage
        }
    )
