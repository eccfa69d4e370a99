"""Each kind of bad record becomes a counted rejection or skip; the rest of the file goes on."""

from __future__ import annotations

import gzip
import io
import zlib

from warcio.warcwriter import WARCWriter

from pipeline.core.stage import read_manifest
from pipeline.ingest import IngestConfig, run_ingest
from tests.conftest import http_response_record
from tests.helpers import read_shards

GOOD = b"<!DOCTYPE html><html><body><p>%s is a perfectly good page.</p></body></html>"
# Latin-1 looking text declared as UTF-8 mixed with bytes that no Windows codepage defines.
UNDECODABLE = b"<html><body>" + b"\x81\x8d\x8f\x90\x9d\xff\xfe" * 300 + b"</body></html>"
GARBAGE = bytes(range(256)) * 40  # binary, yet labelled text/html


def gzip_members(path) -> list[bytes]:
    data, members, pos = path.read_bytes(), [], 0
    while pos < len(data):
        d = zlib.decompressobj(31)
        d.decompress(data[pos:])
        end = len(data) - len(d.unused_data)
        members.append(data[pos:end])
        pos = end
    return members


def build_bad_warc(path) -> dict[str, str]:
    """A WARC with every kind of bad record; returns {record id: expected outcome}."""
    expected = {}
    with open(path, "wb") as fh:
        w = WARCWriter(fh, gzip=True)
        w.write_record(w.create_warcinfo_record("bad.warc.gz", {"software": "test"}))
        expected[http_response_record(w, "http://a.example/ok", GOOD % b"A")] = "document"
        expected[http_response_record(w, "http://a.example/img", b"\x89PNG....", "image/png")] = (
            "non_text_payload"
        )
        expected[http_response_record(w, "http://a.example/404", GOOD % b"X", status=404)] = (
            "http_error"
        )
        expected[http_response_record(w, "http://a.example/empty", b"")] = "empty_body"
        expected[
            http_response_record(
                w, "http://a.example/bytes", UNDECODABLE, "text/html; charset=utf-8"
            )
        ] = "undecodable"
        expected[http_response_record(w, "http://a.example/garbage", GARBAGE)] = "binary_payload"
        revisit = w.create_revisit_record(
            "http://a.example/ok",
            digest="sha1:AAAA",
            refers_to_uri="http://a.example/ok",
            refers_to_date="2024-01-01T00:00:00Z",
        )
        w.write_record(revisit)
        meta = w.create_warc_record("http://a.example/ok", "metadata", payload=io.BytesIO(b"x: y"))
        w.write_record(meta)
        expected[http_response_record(w, "http://a.example/cut", GOOD % b"Cut" * 50)] = (
            "truncated_record"
        )
        expected[http_response_record(w, "http://a.example/after", GOOD % b"B")] = "document"
    # Cut the member of the `cut` record in half, in the middle of the file.
    members = gzip_members(path)
    members[-2] = members[-2][: len(members[-2]) // 2]
    path.write_bytes(b"".join(members))
    return expected


def test_every_bad_record_is_accounted_for(tmp_path):
    warc = tmp_path / "bad.warc.gz"
    expected = build_bad_warc(warc)
    result = run_ingest(IngestConfig(), [str(warc)], tmp_path / "ingest")

    docs = read_shards(tmp_path / "ingest")
    rejected = read_shards(tmp_path / "ingest" / "rejected")
    outcome = dict.fromkeys(docs["id"].to_pylist(), "document")
    outcome |= dict(zip(rejected["id"].to_pylist(), rejected["reason"].to_pylist()))
    assert outcome == expected
    assert set(rejected["stage"].to_pylist()) == {"ingest"}

    m = read_manifest(tmp_path / "ingest")
    assert m["skipped_records"] == {"metadata": 1, "revisit": 1, "warcinfo": 1}
    assert result.counts["records_in"] == len(expected) + 3 == 11
    assert result.counts["records_in"] == docs.num_rows + rejected.num_rows + 3


def test_truncated_last_member_is_reported(tmp_path):
    warc = tmp_path / "tail.warc.gz"
    with open(warc, "wb") as fh:
        w = WARCWriter(fh, gzip=True)
        good = http_response_record(w, "http://a.example/1", GOOD % b"One")
        cut = http_response_record(w, "http://a.example/2", GOOD % b"Two" * 100)
    warc.write_bytes(warc.read_bytes()[:-40])
    run_ingest(IngestConfig(), [str(warc)], tmp_path / "ingest")
    assert read_shards(tmp_path / "ingest")["id"].to_pylist() == [good]
    rejected = read_shards(tmp_path / "ingest" / "rejected").to_pylist()
    assert [(r["id"], r["reason"]) for r in rejected] == [(cut, "truncated_record")]


def test_oversized_record_is_rejected_not_loaded(tmp_path):
    warc = tmp_path / "big.warc.gz"
    big = b"<html><body>" + b"<p>word</p>" * 200_000 + b"</body></html>"  # 2.2 MB
    with open(warc, "wb") as fh:
        w = WARCWriter(fh, gzip=True)
        small = http_response_record(w, "http://a.example/small", GOOD % b"S")
        huge = http_response_record(w, "http://a.example/huge", big)
    cfg = IngestConfig(max_record_bytes=1 << 20)
    run_ingest(cfg, [str(warc)], tmp_path / "ingest")
    assert read_shards(tmp_path / "ingest")["id"].to_pylist() == [small]
    rejected = read_shards(tmp_path / "ingest" / "rejected").to_pylist()
    assert [(r["id"], r["reason"]) for r in rejected] == [(huge, "too_large")]


def test_whole_file_gzip_is_streamed(tmp_path):
    """Some tools gzip a WARC as one stream; records are still read one by one."""
    plain = tmp_path / "plain.warc"
    with open(plain, "wb") as fh:
        w = WARCWriter(fh, gzip=False)
        page = GOOD % (b"word " * 200)
        ids = [http_response_record(w, f"http://a.example/{i}", page) for i in range(40)]
    whole = tmp_path / "whole.warc.gz"
    whole.write_bytes(gzip.compress(plain.read_bytes(), mtime=0))
    cfg = IngestConfig(max_record_bytes=16 << 10)  # smaller than the single 40-record member
    run_ingest(cfg, [str(whole)], tmp_path / "a")
    run_ingest(cfg, [str(plain)], tmp_path / "b")
    assert read_shards(tmp_path / "a")["id"].to_pylist() == ids
    assert read_shards(tmp_path / "b")["id"].to_pylist() == ids


def test_missing_input_is_a_clear_error(tmp_path):
    import pytest

    from pipeline.ingest.sources import InputError

    with pytest.raises(InputError, match="input not found: .*nope"):
        run_ingest(IngestConfig(), [str(tmp_path / "nope.warc.gz")], tmp_path / "ingest")
    with pytest.raises(InputError, match="unsupported input format"):
        (tmp_path / "x.csv").write_text("a,b")
        run_ingest(IngestConfig(), [str(tmp_path / "x.csv")], tmp_path / "ingest")


def test_empty_or_mislabelled_warc_is_an_unreadable_file_row(tmp_path):
    """Row 6: these passed silently (exit 0, no records, nothing in the ledger)."""
    (tmp_path / "zero.warc.gz").write_bytes(b"")
    (tmp_path / "text.warc.gz").write_text("just some text, not gzip and not WARC\n")
    result = run_ingest(IngestConfig(workers=1), [str(tmp_path)], tmp_path / "out")
    rejected = read_shards(tmp_path / "out" / "rejected").to_pylist()
    got = {r["url"].rsplit("/", 1)[-1]: (r["reason"], r["detail"]) for r in rejected}
    assert got == {
        "zero.warc.gz": ("unreadable_file", "UnreadableFile: empty file (0 bytes)"),
        "text.warc.gz": (
            "unreadable_file",
            "UnreadableFile: no WARC record found in 38 bytes: not a gzip-compressed WARC",
        ),
    }
    assert result.counts == {"records_in": 2, "documents": 0, "rejected": 2, "files": 2}


def test_empty_uncompressed_warc_is_an_unreadable_file_row(tmp_path):
    (tmp_path / "zero.warc").write_bytes(b"")
    run_ingest(IngestConfig(workers=1), [str(tmp_path / "zero.warc")], tmp_path / "out")
    rejected = read_shards(tmp_path / "out" / "rejected").to_pylist()
    assert [(r["reason"], r["detail"]) for r in rejected] == [
        ("unreadable_file", "UnreadableFile: empty file (0 bytes)")
    ]
