"""Unseen pages for the quality stage: the bundled sample split in two by page URL. The reference
is the bundled instruction set's records about half A's pages; half B's pages, never seen by the
reference, are the good pages, mixed with junk written by code (`tests/quality/junk.py`)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from pipeline.clean.extract import resiliparse_extract
from pipeline.ingest import IngestConfig, run_ingest
from tests.conftest import REPO, SAMPLE_WARC
from tests.helpers import read_shards
from tests.tokenize.conftest import write_dedup_dir  # noqa: F401 (helper)

INSTRUCTIONS = REPO / "data" / "sample" / "python-docs-instructions.jsonl"


def half(url: str) -> str:
    """Half "A" or "B" of a page (fragment dropped), by a hash of its URL: no choice by content."""
    page = url.split("#")[0].replace("http://", "https://")
    return "AB"[hashlib.sha256(page.encode()).digest()[0] % 2]


@pytest.fixture(scope="session")
def reference_a(tmp_path_factory) -> Path:
    """The instruction records whose source page is in half A, as a JSONL file."""
    path = tmp_path_factory.mktemp("reference") / "reference-a.jsonl"
    lines = [line for line in INSTRUCTIONS.read_text().splitlines() if line.strip()]
    kept = [line for line in lines if half(json.loads(line)["source"]) == "A"]
    path.write_text("\n".join(kept) + "\n")
    return path


@pytest.fixture(scope="session")
def pages_b(tmp_path_factory) -> list[dict]:
    """Half B of the sample's pages (the reference never saw them), their main content as the
    clean stage extracts it, those with at least 50 words."""
    ingest_dir = tmp_path_factory.mktemp("ingest") / "ingest"
    run_ingest(IngestConfig(workers=1), [str(SAMPLE_WARC)], ingest_dir)
    table = read_shards(ingest_dir)
    rows = zip(*(table.column(c).to_pylist() for c in ("id", "url", "raw")), strict=True)
    pages = [{"id": i, "url": u, "text": resiliparse_extract(raw)} for i, u, raw in rows]
    return [p for p in pages if half(p["url"]) == "B" and len(p["text"].split()) >= 50]
