"""Inputs from local paths, globs, directories, file:// URLs and an HTTP server on loopback."""

from __future__ import annotations

import functools
import http.server
import shutil
import threading

import pytest

from pipeline.ingest import IngestConfig, run_ingest
from pipeline.ingest.sources import InputError, resolve_inputs
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
