"""Issue 33 row 7 on a bucket: an upstream shard object cut in half after a finished run.

The manifest of a stage on a bucket records each object's size and ETag (one listing); a rerun
lists the bucket again, so the cut object's stage runs again from whole files and gives the
documents of a fresh run, and a stage that reads the damaged stage stops naming the object.
"""

from __future__ import annotations

import json

import pytest

from pipeline.clean import run_clean
from pipeline.config import load_config
from pipeline.core.layout import RunLayout
from pipeline.core.stage import DamagedUpstreamError, read_manifest
from pipeline.dedup import run_dedup
from pipeline.io import mirror
from tests.storage.helpers import SETS, bucket_digest, upload_inputs


def _cut_in_half(s3, url: str) -> None:
    bucket, key = url.removeprefix("s3://").split("/", 1)
    client = s3.client()
    body = client.get_object(Bucket=bucket, Key=key)["Body"].read()
    client.put_object(Bucket=bucket, Key=key, Body=body[: len(body) // 2])


def _ingest_clean_dedup(inputs: str, run_url: str) -> list:
    cfg = load_config(None, [f"inputs=[{json.dumps(inputs)}]", *SETS])
    from pipeline.ingest import run_ingest

    run = RunLayout(run_url)
    return [
        run_ingest(cfg.ingest, cfg.inputs, run.ingest),
        run_clean(cfg.clean, run.ingest, run.clean),
        run_dedup(cfg.dedup, run.clean, run.dedup),
    ]


def test_a_cut_upstream_object_on_a_bucket_is_rebuilt_or_named(s3, tmp_path, monkeypatch, capfd):
    monkeypatch.setenv(mirror.SCRATCH_ENV, str(tmp_path / "scratch"))
    inputs = upload_inputs(s3, copies=1)
    run_url = f"s3://{s3.bucket()}/runs/r1"
    run = RunLayout(run_url)
    first = _ingest_clean_dedup(inputs, run_url)
    fresh = bucket_digest(s3, run_url)
    recorded = read_manifest(run.ingest)["files"]
    shard = sorted(read_manifest(run.ingest)["shards"])[0]
    assert set(recorded[shard]) == {"size", "etag"}  # recorded without downloading

    # The ingest shard cut in half: dedup alone stops before reading, naming the object.
    _cut_in_half(s3, f"{run_url}/ingest/{shard}")
    capfd.readouterr()
    monkeypatch.setenv(mirror.SCRATCH_ENV, str(tmp_path / "another-node"))
    run = RunLayout(run_url)  # this node's mirror
    cfg = load_config(None, [f"inputs=[{json.dumps(inputs)}]", *SETS])
    with pytest.raises(DamagedUpstreamError) as err:
        run_clean(cfg.clean, run.ingest, run.clean)
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith(f"{run_url}/ingest/{shard} (")
    assert f"`lmpipe ingest --output {run_url}` again" in message

    # A rerun of the stages rebuilds ingest from whole files: the documents of a fresh run.
    again = _ingest_clean_dedup(inputs, run_url)
    assert not again[0].skipped
    assert f"{run_url}/ingest/{shard}" in capfd.readouterr().err
    assert bucket_digest(s3, run_url) == fresh
    assert [r.counts for r in again] == [r.counts for r in first]
    assert all(r.skipped for r in _ingest_clean_dedup(inputs, run_url))  # and it stays done
