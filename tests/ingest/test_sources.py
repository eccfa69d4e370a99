"""Inputs from local paths, globs, directories, file:// URLs and an HTTP server on loopback."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading
import time

import pytest

from pipeline.core.stage import prepare_stage_dir
from pipeline.ingest import IngestConfig, run_ingest
from pipeline.ingest.run import ingest_file
from pipeline.ingest.sources import InputError, detect_format, file_name, resolve_inputs
from tests.conftest import REAL_WARCS, SAMPLE_WARC
from tests.helpers import read_shards


@pytest.fixture
def http_root(tmp_path):
    """A real HTTP server on 127.0.0.1 serving `tmp_path/www` (no range requests)."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_globs_and_directories_resolve_sorted(tmp_path):
    for p in REAL_WARCS:
        shutil.copy(p, tmp_path / p.name)
    by_glob = resolve_inputs([str(tmp_path / "*.gz")])
    by_dir = resolve_inputs([str(tmp_path)])
    assert by_glob == by_dir == sorted(str(tmp_path / p.name) for p in REAL_WARCS)


def test_file_url_goes_through_fsspec(tmp_path):
    run_ingest(IngestConfig(), [SAMPLE_WARC.as_uri()], tmp_path / "url")
    run_ingest(IngestConfig(), [str(SAMPLE_WARC)], tmp_path / "path")
    assert read_shards(tmp_path / "url")["id"].equals(read_shards(tmp_path / "path")["id"])


def test_http_url_streams_from_a_loopback_server(tmp_path, http_root):
    root, base = http_root
    shutil.copy(SAMPLE_WARC, root / SAMPLE_WARC.name)
    run_ingest(IngestConfig(), [f"{base}/{SAMPLE_WARC.name}"], tmp_path / "http")
    run_ingest(IngestConfig(), [str(SAMPLE_WARC)], tmp_path / "local")
    got, want = read_shards(tmp_path / "http"), read_shards(tmp_path / "local")
    assert got.num_rows == 350
    assert got.select(["id", "url", "raw"]).equals(want.select(["id", "url", "raw"]))
    assert set(got["source"].to_pylist()) == {f"{base}/{SAMPLE_WARC.name}"}


def test_missing_http_url_is_an_error_up_front(http_root):
    _, base = http_root
    with pytest.raises(InputError, match="input not found"):
        resolve_inputs([f"{base}/missing.warc.gz"])


def test_silent_server_is_a_clear_error_within_the_timeout(silent_server):
    """Row 7: this hung for aiohttp's 300 s, then raised FSTimeoutError."""
    t0 = time.monotonic()
    with pytest.raises(InputError) as err:
        resolve_inputs([f"{silent_server}/x.jsonl"], timeout=1.0)
    assert time.monotonic() - t0 < 10  # HEAD, then GET: two waits of 1 s
    assert str(err.value) == (
        f"input {silent_server}/x.jsonl: no answer from {silent_server}/x.jsonl within 1 s "
        "(`ingest.network_timeout_seconds`)"
    )


def test_silent_server_mid_run_is_an_unreadable_file_row(tmp_path, silent_server):
    """A server that stops answering after the run started: the file is a ledger row."""
    url = f"{silent_server}/x.jsonl"
    prepare_stage_dir(tmp_path, "inputs", "config")
    t0 = time.monotonic()
    info = ingest_file(IngestConfig(network_timeout_seconds=1.0), url, tmp_path)
    assert time.monotonic() - t0 < 10
    assert (info["records_in"], info["reasons"]) == (1, {"unreadable_file": 1})
    detail = read_shards(tmp_path / "rejected")["detail"].to_pylist()
    assert detail == [f"no answer from {url} within 1 s (`ingest.network_timeout_seconds`)"]


def test_cli_reports_a_silent_server_in_one_line(silent_server, tmp_path, capsys):
    from flows.cli import main

    url = f"{silent_server}/x.jsonl"
    args = ["--set", "ingest.network_timeout_seconds=1", "--output", str(tmp_path)]
    assert main(["ingest", "--input", url, *args]) == 2
    err = capsys.readouterr().err
    assert err == f"lmpipe: error: input {url}: no answer from {url} within 1 s " + (
        "(`ingest.network_timeout_seconds`)\n"
    )


@pytest.mark.parametrize(
    ("url", "name", "fmt"),
    [
        ("https://h/x.warc.gz?sig=a.jsonl#frag", "x.warc.gz", "warc"),  # an http query string
        ("http://h/d/x.jsonl?page=2", "x.jsonl", "jsonl"),
        ("s3://b/a?b.warc.gz", "a?b.warc.gz", "warc"),  # `?` is part of a key
        ("s3://b/x.warc.gz?b.jsonl", "x.warc.gz?b.jsonl", "jsonl"),
        ("gs://b/c#d.jsonl", "c#d.jsonl", "jsonl"),
        ("az://c/e f.parquet", "e f.parquet", "parquet"),
        ("/data/a?b#c.warc.gz", "a?b#c.warc.gz", "warc"),
        ("file:///data/a?b.wet", "a?b.wet", "warc"),
    ],
)
def test_only_an_http_url_has_a_query_string(url, name, fmt):
    """Issue 33 row 14: the name was cut at `?` for every location, not only http(s)."""
    assert file_name(url) == name
    assert detect_format(url) == fmt


def test_local_names_with_glob_characters_are_files_and_globs(tmp_path):
    for name in ("a?b.warc.gz", "a[1].warc.gz", "axb.warc.gz", "c#d e.warc.gz"):
        shutil.copy(REAL_WARCS[0], tmp_path / name)
    # A name that exists is that file, though `?`, `*` or `[` would also make it a pattern.
    assert resolve_inputs([str(tmp_path / "a?b.warc.gz")]) == [str(tmp_path / "a?b.warc.gz")]
    assert resolve_inputs([str(tmp_path / "a[1].warc.gz")]) == [str(tmp_path / "a[1].warc.gz")]
    assert resolve_inputs([str(tmp_path / "c#*")]) == [str(tmp_path / "c#d e.warc.gz")]
    assert resolve_inputs([str(tmp_path / "a?b*")]) == sorted(
        str(tmp_path / n) for n in ("a?b.warc.gz", "axb.warc.gz")
    )


def test_an_http_query_string_is_not_the_file_name(tmp_path, http_root):
    root, base = http_root
    shutil.copy(REAL_WARCS[0], root / "x.warc.gz")
    url = f"{base}/x.warc.gz?token=abc"  # the server ignores the query, as a signed URL's does
    result = run_ingest(IngestConfig(), [url], tmp_path / "http")
    assert result.counts["documents"] > 0 and result.reasons == {}
    assert set(read_shards(tmp_path / "http")["source"].to_pylist()) == {url}
