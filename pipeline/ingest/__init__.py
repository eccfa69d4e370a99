"""Ingestion: WARC/WET/JSONL/Parquet files to Arrow document shards (`run_ingest`)."""

from pipeline.ingest.config import IngestConfig
from pipeline.ingest.run import run_ingest

__all__ = ["IngestConfig", "run_ingest"]
