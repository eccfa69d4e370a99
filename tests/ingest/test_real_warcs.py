"""Ingest of real WARC/WET files, checked against an independent count with warcio."""

from __future__ import annotations

import pyarrow as pa
import pytest
from warcio.archiveiterator import ArchiveIterator

from pipeline.core.stage import read_manifest
from pipeline.ingest import IngestConfig, run_ingest
from tests.conftest import REAL_WARCS, SAMPLE_WARC
from tests.helpers import read_shards

HTML_TYPES = ("text/html", "application/xhtml+xml")


def warcio_expectation(path):
    """All records, and the (id, url) of the records that should become documents, by warcio."""
    total, docs = 0, set()
    with open(path, "rb") as fh:
        for rec in ArchiveIterator(fh):
            total += 1
            rid = rec.rec_headers.get_header("WARC-Record-ID")
            url = (rec.rec_headers.get_header("WARC-Target-URI") or "").strip("<>")
            if rec.rec_type == "conversion":
                docs.add((rid, url))
            elif rec.rec_type == "response" and rec.http_headers is not None:
                ctype = (rec.http_headers.get_header("Content-Type") or "").split(";")[0]
                status = int(rec.http_headers.get_statuscode())
                if ctype.strip().lower() in HTML_TYPES and status < 300:
                    docs.add((rid, url))
    return total, docs


@pytest.mark.parametrize("path", [SAMPLE_WARC, *REAL_WARCS], ids=lambda p: p.name)
def test_ingest_matches_warcio(path, tmp_path):
    result = run_ingest(IngestConfig(workers=1), [str(path)], tmp_path / "ingest")
    total, expected = warcio_expectation(path)
    table = read_shards(tmp_path / "ingest")
    got = set(zip(table["id"].to_pylist(), table["url"].to_pylist()))
    assert got == expected
    assert table.num_rows == len(expected)  # no document twice
    m = read_manifest(tmp_path / "ingest")
    skipped = sum(m["skipped_records"].values())
    assert (
        m["counts"]["records_in"]
        == total
        == result.counts["documents"] + m["counts"]["rejected"] + skipped
    )
    assert table["text"].null_count == table.num_rows  # text is filled by the clean stage
    assert all(table["raw"].to_pylist())


def test_sample_rejects_non_html_resources(tmp_path):
    run_ingest(IngestConfig(), [str(SAMPLE_WARC)], tmp_path / "ingest")
    m = read_manifest(tmp_path / "ingest")
    assert m["counts"]["documents"] == 350
    assert m["reasons"] == {"non_text_payload": 10}  # the css/js/png/svg resources
    assert m["skipped_records"] == {"request": 360, "warcinfo": 1}
    rejected = read_shards(tmp_path / "ingest" / "rejected")
    assert set(rejected["reason"].to_pylist()) == {"non_text_payload"}
    assert all(
        u.startswith("https://docs.python.org/3.11/_static/") for u in rejected["url"].to_pylist()
    )


def test_wet_conversion_record_is_plain_text(tmp_path):
    wet = next(p for p in REAL_WARCS if "wet" in p.name)
    run_ingest(IngestConfig(), [str(wet)], tmp_path / "ingest")
    row = read_shards(tmp_path / "ingest").to_pylist()[0]
    assert row["content_type"] == "text/plain"
    assert row["url"] == "https://an.wikipedia.org/wiki/Escopete"
    assert "Escopete" in row["raw"]
    assert row["fetch_date"].year == 2024


def test_documents_keep_the_decoded_payload(tmp_path):
    run_ingest(IngestConfig(), [str(SAMPLE_WARC)], tmp_path / "ingest")
    table = read_shards(tmp_path / "ingest")
    rows = {r["url"]: r for r in table.to_pylist()}
    page = rows["https://docs.python.org/3.11/tutorial/index.html"]
    assert page["raw"].lstrip().lower().startswith("<!doctype html")
    assert "The Python Tutorial" in page["raw"]
    assert page["charset"] == "utf-8" and page["http_status"] == 200
    assert table.schema.field("fetch_date").type == pa.timestamp("s", tz="UTC")
