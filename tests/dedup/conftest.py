"""Real pages as clean-stage stand-ins, and builders of clean-shaped run directories.

The clean stage is written in parallel with dedup, so these tests build clean-shaped shards
themselves (tests/dedup/labeled.py `write_clean_run`: the clean schema plus an extra column,
and a manifest with an `output_fingerprint`) from real text: the Python docs pages of the bundled
sample and the tests' web captures, reduced to text with resiliparse's html2text.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from tests.conftest import REAL_WARCS, SAMPLE_WARC
from tests.dedup.labeled import Doc, load_pages, write_clean_run


@pytest.fixture(scope="session")
def pages(tmp_path_factory) -> list[Doc]:
    """Every page of the sample WARC and the real web captures with 20+ words of text."""
    work = tmp_path_factory.mktemp("pages")
    docs = load_pages([str(SAMPLE_WARC), *map(str, REAL_WARCS)], work)
    assert len(docs) > 380
    return docs


@pytest.fixture(scope="session")
def distinct_pages(pages) -> list[Doc]:
    """Sample pages that are not near-duplicates of each other (one per URL, long enough)."""
    seen, out = set(), []
    for doc in pages:
        if "docs.python.org" in doc.url and doc.url not in seen and len(doc.text) > 3000:
            seen.add(doc.url)
            out.append(doc)
    return out


def clean_dir(root: Path, docs: list[Doc], shard_rows: int = 25) -> Path:
    return write_clean_run(Path(root) / "clean", docs, shard_rows=shard_rows)


def read_dir(directory: Path) -> pa.Table:
    """All `.arrow` files directly in `directory` (name order) as one table."""
    files = sorted(Path(directory).glob("*.arrow"))
    tables = [pa.ipc.open_file(pa.memory_map(str(f))).read_all() for f in files]
    return pa.concat_tables(tables) if tables else pa.table({})


def rejected_by_id(stage_dir: Path) -> dict[str, dict]:
    table = read_dir(Path(stage_dir) / "rejected")
    return {row["id"]: row for row in table.to_pylist()} if table.num_columns else {}
