"""Configuration of the ingestion stage."""

from typing import Any, Literal

from pydantic import Field

from pipeline.core.base_config import StrictModel

DEFAULT_ACCEPT_TYPES = ["text/html", "application/xhtml+xml", "text/plain"]


class IngestConfig(StrictModel):
    """How raw files become Arrow document shards."""

    workers: int = Field(2, ge=1)
    """Worker processes; input files are split across them (one file is read by one worker)."""
    shard_max_records: int = Field(10_000, ge=1)
    """A new output shard starts after this many documents."""
    shard_max_bytes: int = Field(256 * 2**20, ge=2**20)
    """A new output shard starts after this many bytes of raw payload."""
    batch_records: int = Field(1_000, ge=1)
    """Documents buffered before a record batch is flushed to the shard (bounds memory)."""
    max_record_bytes: int = Field(64 * 2**20, ge=2**10)
    """Payloads larger than this are rejected as `too_large` without being kept in memory."""
    accept_types: list[str] = Field(default_factory=lambda: list(DEFAULT_ACCEPT_TYPES))
    """Payload MIME types that become documents (XHTML counts as HTML)."""
    max_replacement_ratio: float = Field(0.01, ge=0.0, le=1.0)
    """Share of undecodable characters above which a payload is rejected as `undecodable`."""
    text_field: str = "text"
    """JSONL/Parquet: the column holding the document text."""
    id_field: str = "id"
    """JSONL/Parquet: the column holding the document id (a stable hash is used when absent)."""
    url_field: str = "url"
    """JSONL/Parquet: the column holding the source URL (may be absent)."""
    date_field: str = "date"
    """JSONL/Parquet: the column holding the fetch/creation date (may be absent)."""
    network_timeout_seconds: float = Field(30.0, gt=0)
    """Longest wait for a remote input (http/https, s3) to connect or send its next bytes."""
    # exclude: they may hold secrets, so no manifest, config hash or Prefect parameter holds them.
    storage_options: dict[str, dict[str, Any]] = Field(default_factory=dict, exclude=True)
    """fsspec options per input protocol (`{s3: {endpoint_url: ...}}`), over AWS_* variables."""
    compression: Literal["zstd", "lz4", "none"] = "zstd"
    """Compression of the Arrow IPC output shards."""
