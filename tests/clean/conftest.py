"""Inputs for the clean tests: real pages (the sample, the shared WARCs), small WARCs written with
warcio, and ingest-shaped shards written directly for records ingest would never let through."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest
from warcio.warcwriter import WARCWriter

from pipeline.clean import CleanConfig, run_clean
from pipeline.core.stage import fingerprint, write_manifest
from pipeline.ingest import IngestConfig, run_ingest
from pipeline.ingest.events import DOCUMENT_SCHEMA
from tests.clean.pages import page
from tests.conftest import REAL_WARCS, SAMPLE_WARC, http_response_record, shared_dir

# The sample in units of 50 rows, so that resume and parallelism have several units to work on.
SAMPLE_CFG = {"unit_documents": 50, "workers": 2}


def write_warc(path: Path, pages: dict[str, bytes | str]) -> Path:
    """One `text/html; charset=utf-8` response record per url."""
    with open(path, "wb") as fh:
        writer = WARCWriter(fh, gzip=True)
        for url, body in pages.items():
            data = body.encode("utf-8") if isinstance(body, str) else body
            http_response_record(writer, url, data, "text/html; charset=utf-8")
    return path


def ingest(inputs: list[Path], run_dir: Path) -> Path:
    run_ingest(IngestConfig(workers=1), [str(p) for p in inputs], run_dir / "ingest")
    return run_dir / "ingest"


def write_ingest_shard(stage_dir: Path, rows: list[dict], raw: pa.Array | None = None) -> Path:
    """An ingest stage directory holding `rows` (raw given as str, or as `raw`, any array)."""
    stage_dir.mkdir(parents=True, exist_ok=True)
    columns = {name: [r.get(name) for r in rows] for name in DOCUMENT_SCHEMA.names}
    arrays = [
        raw if (name == "raw" and raw is not None) else pa.array(columns[name], type=field.type)
        for name, field in zip(DOCUMENT_SCHEMA.names, DOCUMENT_SCHEMA)
    ]
    table = pa.Table.from_arrays(arrays, schema=DOCUMENT_SCHEMA)
    with pa.ipc.new_file(str(stage_dir / "handmade-00000.arrow"), DOCUMENT_SCHEMA) as writer:
        writer.write_table(table)
    write_manifest(
        stage_dir,
        stage="ingest",
        counts={"documents": len(rows)},
        output_fingerprint=fingerprint([r["id"] for r in rows]),
    )
    return stage_dir


def record(id: str, raw: str | None, content_type: str = "text/html") -> dict:
    return {"id": id, "url": f"http://bad.example/{id}", "source": "handmade",
            "content_type": content_type, "raw": raw}  # fmt: skip


# Read-only stage directories, built once per test run (shared by xdist workers: shared_dir).
@pytest.fixture(scope="session")
def sample_ingest(tmp_path_factory) -> Path:
    return shared_dir(tmp_path_factory, "sample", lambda d: ingest([SAMPLE_WARC], d)) / "ingest"


@pytest.fixture(scope="session")
def sample_clean(sample_ingest, tmp_path_factory) -> Path:
    """The sample through clean with the default (published) filters."""

    def build(root: Path) -> None:
        run_clean(CleanConfig(**SAMPLE_CFG), sample_ingest, root / "clean")

    return shared_dir(tmp_path_factory, "sample-clean", build) / "clean"


@pytest.fixture(scope="session")
def real_warcs_ingest(tmp_path_factory) -> Path:
    return shared_dir(tmp_path_factory, "real", lambda d: ingest(REAL_WARCS, d)) / "ingest"


@pytest.fixture(scope="session")
def languages_ingest(tmp_path_factory) -> Path:
    """Real-language paragraphs (German, Japanese, Russian), an English page and a mojibake page."""
    run_dir = tmp_path_factory.mktemp("languages")
    warc = write_warc(
        run_dir / "languages.warc.gz",
        {f"http://{name}.example/": page(name) for name in ("de", "ja", "ru", "en", "mojibake")},
    )
    return ingest([warc], run_dir)
