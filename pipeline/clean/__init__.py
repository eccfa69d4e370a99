"""Cleaning: ingested records to clean text (`run_clean`): extraction, Unicode repair, language
ID, quality filters and PII redaction."""

from pipeline.clean.config import CleanConfig
from pipeline.clean.run import CLEAN_SCHEMA, run_clean

__all__ = ["CLEAN_SCHEMA", "CleanConfig", "run_clean"]
