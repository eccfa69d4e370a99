"""A bad field rejects its record with a reason; the rest of the file and of the run goes on.

Issue 16, rows 1 and 2, plus a fuzz test: random JSON values and random bytes through ingest
always give records in = documents + rejected (+ skipped), never an exception.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.core.stage import read_manifest
from pipeline.ingest import IngestConfig, run_ingest
from tests.conftest import SAMPLE_WARC
from tests.helpers import read_shards


def outcome(out_dir: Path) -> tuple[list[str], list[tuple[str, str]]]:
    """Document ids, and (id, reason) of the rejected records."""
    docs = read_shards(out_dir)["id"].to_pylist() if list(out_dir.glob("*.arrow")) else []
    rejected = read_shards(out_dir / "rejected").to_pylist()
    return docs, [(r["id"], r["reason"]) for r in rejected]


def test_lone_surrogate_rejects_its_record_only(tmp_path):
    """Row 1: `\\ud800` in a JSON string used to fail the whole stage, every good file with it."""
    (tmp_path / "s.jsonl").write_text('{"id":"a","text":"ok"}\n{"id":"b","text":"x \\ud800 y"}\n')
    (tmp_path / "other.jsonl").write_text('{"id":"c","text":"another good file"}\n')
    result = run_ingest(IngestConfig(workers=1), [str(tmp_path)], tmp_path / "out")
    docs, rejected = outcome(tmp_path / "out")
    assert sorted(docs) == ["a", "c"]
    assert rejected == [("b", "bad_text")]
    detail = read_shards(tmp_path / "out" / "rejected")["detail"][0].as_py()
    assert detail == "`text` is not valid Unicode: surrogates not allowed at 2"
    assert result.counts == {"records_in": 3, "documents": 2, "rejected": 1, "files": 2}


def test_surrogate_in_the_id_is_kept_escaped_in_the_ledger(tmp_path):
    (tmp_path / "s.jsonl").write_text('{"id":"x\\udfff","text":"fine text"}\n')
    run_ingest(IngestConfig(workers=1), [str(tmp_path / "s.jsonl")], tmp_path / "out")
    assert outcome(tmp_path / "out") == ([], [("x\\udfff", "bad_text")])


def test_date_overflow_rejects_its_record_only(tmp_path):
    """Row 2: `1e20` as a date made the whole file one `unreadable_file`; d2 and d3 vanished."""
    lines = [
        '{"id":"d1","text":"x","date":1e20}',
        '{"id":"d2","text":"y"}',
        '{"id":"d3","text":"z"}',
    ]
    (tmp_path / "d.jsonl").write_text("\n".join(lines) + "\n")
    result = run_ingest(IngestConfig(workers=1), [str(tmp_path / "d.jsonl")], tmp_path / "out")
    assert outcome(tmp_path / "out") == (["d2", "d3"], [("d1", "bad_date")])
    assert result.counts == {"records_in": 3, "documents": 2, "rejected": 1, "files": 1}


def test_odd_values_in_every_field(tmp_path):
    """Numbers, NaN, nested objects and huge integers where strings are expected."""
    rows = [
        '{"id": 7, "text": "numeric id", "url": ["a", {"b": 1}], "date": "not a date"}',
        '{"id": "nan", "text": "x", "date": NaN}',
        '{"id": "inf", "text": "x", "date": -Infinity}',
        '{"id": {"nested": [1, 2]}, "text": "nested id"}',
        '{"id": "deep", "text": ' + "[" * 5000 + "]" * 5000 + "}",
        '{"id": "big", "text": "x", "date": ' + "9" * 5000 + "}",
        '{"id": "neg", "text": "before 1970", "date": -86400}',
    ]
    (tmp_path / "o.jsonl").write_text("\n".join(rows) + "\n")
    result = run_ingest(IngestConfig(workers=1), [str(tmp_path / "o.jsonl")], tmp_path / "out")
    docs, rejected = outcome(tmp_path / "out")
    assert docs == ["7", "{'nested': [1, 2]}", "neg"]
    assert [r for _, r in rejected] == ["bad_date", "bad_date", "bad_json", "bad_json"]
    assert result.counts == {"records_in": 7, "documents": 3, "rejected": 4, "files": 1}


# Strings of any characters, lone surrogates included (`characters` leaves out Cs unless asked);
# any JSON value, numbers of any size; records mostly objects with the fields ingest reads.
CHARS = st.characters(codec=None, categories=["L", "N", "P", "Z", "Cc"])
TEXT = st.text(CHARS, max_size=12) | st.text(CHARS | st.characters(categories=["Cs"]), max_size=6)
SCALARS = st.none() | st.booleans() | st.integers() | st.floats() | TEXT
VALUES = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=6,
)  # fmt: skip
FIELDS = {"id": TEXT | VALUES, "text": TEXT | VALUES, "url": TEXT | VALUES, "date": VALUES}
RECORDS = st.fixed_dictionaries({}, optional=FIELDS) | VALUES
FUZZ = settings(
    max_examples=60,
    deadline=2000,  # ms per example; a whole run is a few seconds
    derandomize=True,  # the same examples on every run (CI)
    suppress_health_check=[HealthCheck.too_slow],
)


def ingest_counts(name: str, data: bytes) -> tuple[dict, int, int]:
    """Ingest one file; its manifest counts and the rows actually in its shards and ledger."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, name)
        path.write_bytes(data)
        result = run_ingest(IngestConfig(workers=1), [str(path)], Path(tmp, "out"))
        docs, rejected = outcome(Path(tmp, "out")) if result.counts["records_in"] else ([], [])
        skipped = sum(read_manifest(Path(tmp, "out"))["skipped_records"].values())
        return result.counts, len(docs) + skipped, len(rejected)


@FUZZ
@given(st.lists(RECORDS, max_size=8))
def test_fuzz_json_records_are_all_accounted_for(records):
    lines = [json.dumps(r) for r in records]  # ensure_ascii: a surrogate arrives as `\ud800`
    counts, kept, rejected = ingest_counts("f.jsonl", "\n".join(lines).encode())
    assert counts["records_in"] == len(records) == kept + rejected
    assert (counts["documents"], counts["rejected"]) == (kept, rejected)


@FUZZ
@given(st.binary(max_size=400), st.sampled_from(["f.jsonl", "f.warc", "f.warc.gz", "f.jsonl.gz"]))
def test_fuzz_random_bytes_never_fail_the_stage(data, name):
    counts, kept, rejected = ingest_counts(name, data)
    assert counts["records_in"] == kept + rejected
    if name.endswith((".warc", ".warc.gz")):  # a file without a record is in the ledger
        assert counts["records_in"] >= 1


@FUZZ
@given(st.integers(0, 2**31), st.binary(min_size=1, max_size=8))
def test_fuzz_damaged_real_warc(offset, garbage):
    """Bytes of the sample WARC overwritten at a random place: each record still accounted."""
    data = bytearray(SAMPLE_WARC.read_bytes()[:60_000])  # the first dozen records
    at = offset % len(data)
    data[at : at + len(garbage)] = garbage
    counts, kept, rejected = ingest_counts("d.warc.gz", bytes(data))
    assert counts["records_in"] == kept + rejected > 0


def test_parquet_date_beyond_python_costs_its_row_only(tmp_path):
    """A timestamp Arrow holds but Python's datetime cannot (year 318857) used to fail the batch."""
    table = pa.table(
        {
            "id": ["p1", "p2", "p3"],
            "text": ["one", "two", "three"],
            "date": pa.array([0, 10**13, 86_400], pa.timestamp("s")),
        }
    )
    pq.write_table(table, tmp_path / "t.parquet")
    result = run_ingest(IngestConfig(workers=1), [str(tmp_path / "t.parquet")], tmp_path / "out")
    docs, rejected = outcome(tmp_path / "out")
    assert docs == ["p1", "p3"]
    assert [reason for _, reason in rejected] == ["bad_field"]
    assert result.counts == {"records_in": 3, "documents": 2, "rejected": 1, "files": 1}
