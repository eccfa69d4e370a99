"""Real curated-corpus stand-ins: the sample WARC ingested, its HTML turned into text.

Clean and dedup are written in parallel with this stage, so the tests build dedup-shaped shards
themselves (Arrow IPC with id, url, text, plus a manifest with an `output_fingerprint`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow as pa
import pytest
from resiliparse.extract.html2text import extract_plain_text

from pipeline.core.stage import ShardWriter, fingerprint, write_manifest
from pipeline.ingest import IngestConfig, run_ingest
from pipeline.tokenize import TokenizeConfig, run_tokenize
from tests.conftest import SAMPLE_WARC, shared_dir
from tests.helpers import read_shards

DEDUP_SCHEMA = pa.schema([("id", pa.string()), ("url", pa.string()), ("text", pa.large_string())])
SAMPLE_CONFIG = {"vocab_size": 4096, "val_fraction": 0.2, "workers": 2}


def write_dedup_dir(
    directory: Path, rows: list[dict], n_shards: int, prefix: str = "part"
) -> list[str]:
    """Write `rows` as `n_shards` dedup-shaped shards plus a finished-stage manifest."""
    directory.mkdir(parents=True, exist_ok=True)
    per_shard = max(1, -(-len(rows) // n_shards))
    writer = ShardWriter(directory, prefix, DEDUP_SCHEMA, max_records=per_shard, batch_records=7)
    for row in rows:
        writer.write(row)
    files = writer.close()
    shards = sorted(p.name for p in directory.glob("*.arrow"))
    write_manifest(directory, stage="dedup", output_fingerprint=fingerprint([shards, len(rows)]))
    return files


@pytest.fixture(scope="session")
def sample_docs(tmp_path_factory) -> list[dict]:
    """The 350 Python-docs pages of the bundled sample: id, url and extracted plain text."""
    ingest_dir = tmp_path_factory.mktemp("ingest") / "ingest"
    run_ingest(IngestConfig(workers=1), [str(SAMPLE_WARC)], ingest_dir)
    table = read_shards(ingest_dir)
    rows = zip(*(table.column(c).to_pylist() for c in ("id", "url", "raw")))
    docs = [{"id": i, "url": u, "text": extract_plain_text(raw)} for i, u, raw in rows]
    assert len(docs) == 350 and all(d["text"] for d in docs)
    return docs


@pytest.fixture(scope="session")
def sample_run(tmp_path_factory, sample_docs) -> Path:
    """A run dir with the sample as 4 dedup shards, tokenized once with a trained tokenizer."""

    def build(run: Path) -> None:
        write_dedup_dir(run / "dedup", sample_docs, n_shards=4)
        run_tokenize(TokenizeConfig(**SAMPLE_CONFIG), run / "dedup", run / "tokenize")

    return shared_dir(tmp_path_factory, "tokens-sample-run", build)  # once per test run


@pytest.fixture(scope="session")
def sample_tokenizer(sample_run) -> Path:
    """The tokenizer trained on the sample (tests reuse it to skip training)."""
    return sample_run / "tokenize" / "tokenizer.json"


def copy_run(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest)
    return dest


def manifest(stage_dir: Path) -> dict:
    return json.loads((stage_dir / "manifest.json").read_text())
