"""JSONL (.jsonl, .gz, .zst) and Parquet dumps: one document per line or row, bad lines rejected."""

from __future__ import annotations

import gzip
import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from pipeline.core.stage import read_manifest
from pipeline.ingest import IngestConfig, run_ingest
from tests.helpers import read_shards

LINES = [
    json.dumps(
        {"id": "a", "url": "https://x.example/a", "text": "First document.", "date": "2024-05-01"}
    ),
    "{not json",
    json.dumps({"id": "b", "text": "Second document."}),
    json.dumps({"id": "c", "body": "no text field"}),
    json.dumps(["a", "list"]),
    json.dumps({"text": "Third document, no id."}),
    "",
]


def write(path, data: bytes):
    if path.name.endswith(".gz"):
        data = gzip.compress(data)
    elif path.name.endswith(".zst"):
        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)


@pytest.mark.parametrize("name", ["dump.jsonl", "dump.jsonl.gz", "dump.jsonl.zst"])
def test_jsonl_lines_become_documents_or_rejections(tmp_path, name):
    write(tmp_path / name, "\n".join(LINES).encode())
    result = run_ingest(IngestConfig(), [str(tmp_path / name)], tmp_path / "ingest")
    docs = read_shards(tmp_path / "ingest").to_pylist()
    assert [d["raw"] for d in docs] == [
        "First document.",
        "Second document.",
        "Third document, no id.",
    ]
    assert docs[0]["url"] == "https://x.example/a" and docs[0]["fetch_date"].year == 2024
    assert docs[0]["content_type"] == "text/plain"
    assert len(docs[2]["id"]) == 32  # a stable hash when the line carries no id
    assert read_manifest(tmp_path / "ingest")["reasons"] == {"bad_json": 2, "missing_text": 1}
    assert result.counts == {"records_in": 6, "documents": 3, "rejected": 3, "files": 1}


def test_stable_ids_do_not_change_between_runs(tmp_path):
    write(tmp_path / "d.jsonl", "\n".join(LINES).encode())
    run_ingest(IngestConfig(), [str(tmp_path / "d.jsonl")], tmp_path / "one")
    run_ingest(IngestConfig(), [str(tmp_path / "d.jsonl")], tmp_path / "two")
    assert read_shards(tmp_path / "one")["id"].equals(read_shards(tmp_path / "two")["id"])


def test_truncated_gzip_keeps_lines_before_the_cut(tmp_path):
    body = "\n".join(json.dumps({"id": str(i), "text": f"document {i} " * 50}) for i in range(2000))
    data = gzip.compress(body.encode())
    (tmp_path / "cut.jsonl.gz").write_bytes(data[: len(data) // 2])
    run_ingest(IngestConfig(), [str(tmp_path / "cut.jsonl.gz")], tmp_path / "ingest")
    docs = read_shards(tmp_path / "ingest")
    rejected = read_shards(tmp_path / "ingest" / "rejected").to_pylist()
    assert 0 < docs.num_rows < 2000
    assert docs["id"].to_pylist() == [str(i) for i in range(docs.num_rows)]
    assert [r["reason"] for r in rejected] == ["truncated_file"]


def test_parquet_rows_with_custom_fields(tmp_path):
    table = pa.table(
        {
            "doc_id": ["p1", "p2", "p3"],
            "content": ["Parquet text one.", None, "Parquet text three."],
            "link": ["https://p.example/1", "https://p.example/2", None],
        }
    )
    pq.write_table(table, tmp_path / "dump.parquet", row_group_size=2)
    cfg = IngestConfig(text_field="content", id_field="doc_id", url_field="link")
    run_ingest(cfg, [(tmp_path / "dump.parquet").as_uri()], tmp_path / "ingest")
    docs = read_shards(tmp_path / "ingest").to_pylist()
    assert [(d["id"], d["raw"], d["url"]) for d in docs] == [
        ("p1", "Parquet text one.", "https://p.example/1"),
        ("p3", "Parquet text three.", None),
    ]
    rejected = read_shards(tmp_path / "ingest" / "rejected").to_pylist()
    assert [(r["id"], r["reason"]) for r in rejected] == [("p2", "missing_text")]


def test_corrupt_parquet_file_is_recorded_and_the_run_goes_on(tmp_path):
    (tmp_path / "broken.parquet").write_bytes(b"PAR1 this is not parquet")
    (tmp_path / "ok.jsonl").write_text(json.dumps({"id": "ok", "text": "fine"}) + "\n")
    result = run_ingest(
        IngestConfig(),
        [str(tmp_path / "broken.parquet"), str(tmp_path / "ok.jsonl")],
        tmp_path / "i",
    )
    assert result.counts["documents"] == 1
    assert read_manifest(tmp_path / "i")["reasons"] == {"unreadable_file": 1}
