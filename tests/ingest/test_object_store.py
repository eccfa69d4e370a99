"""Inputs from an object store: a real S3-compatible server (moto's, its own process on loopback)
reached through `AWS_ENDPOINT_URL`, with globs, ETag fingerprints, retries and clear errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pytest

from pipeline.core.stage import read_manifest
from pipeline.ingest import IngestConfig, run_ingest
from pipeline.ingest.sources import InputError, input_fingerprint, resolve_inputs
from tests.conftest import REAL_WARCS, REPO
from tests.helpers import read_shards, tree_digest
from tests.s3 import FAKE_CREDENTIALS, REGION, FlakyProxy, moto_server

ADMIN = {
    "aws_access_key_id": FAKE_CREDENTIALS["AWS_ACCESS_KEY_ID"],
    "aws_secret_access_key": FAKE_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
}
WARCS = [p for p in REAL_WARCS if p.name.endswith(".warc.gz")]  # the WET file is not a *.warc.gz


def by_input(out_dir: Path) -> dict[str, pa.Table]:
    """Each input file's documents and rejected rows, keyed by the file's name, without `source`
    (the location it was read from, which is meant to differ)."""
    import pyarrow.ipc as ipc

    tables: dict[str, list[pa.Table]] = {}
    for shard in sorted(out_dir.rglob("*.arrow")):
        name = shard.name.rsplit("-", 2)[0]  # `<file name>-<hash of its URL>-<NNNNN>.arrow`
        table = ipc.open_file(shard).read_all()
        if "source" in table.column_names:
            table = table.drop_columns(["source"])
        tables.setdefault(str(shard.relative_to(out_dir).parent / name), []).append(table)
    return {k: pa.concat_tables(v) for k, v in tables.items()}


def assert_same_documents(s3_dir: Path, local_dir: Path) -> None:
    got, want = by_input(s3_dir), by_input(local_dir)
    assert got.keys() == want.keys()
    for key in want:
        assert got[key].equals(want[key]), key
    assert read_manifest(s3_dir)["counts"] == read_manifest(local_dir)["counts"]


@pytest.mark.parametrize(
    "command", ["ingest", pytest.param("data", marks=pytest.mark.slow)], ids=["ingest", "data"]
)
def test_lmpipe_from_an_s3_glob_matches_local_ingest(s3, tmp_path, command):
    """`lmpipe ingest|data --input 's3://raw/*.warc.gz'`, the bucket reached through
    AWS_ENDPOINT_URL, ingests what a local ingest of the same files does; `data` goes on through
    clean, dedup and tokenize."""
    bucket = s3.bucket("raw")
    s3.upload(WARCS, bucket)
    out = tmp_path / "s3-run"
    cmd = [sys.executable, "-m", "flows.cli", command, "--input", f"s3://{bucket}/*.warc.gz"]
    # As `make test` sets it: a loaded 2-core machine can take more than 20 s to start Prefect.
    env = {"PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180", **os.environ}
    done = subprocess.run(
        [*cmd, "--output", str(out)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run_ingest(IngestConfig(), [str(p) for p in WARCS], tmp_path / "local")

    assert_same_documents(out / "ingest", tmp_path / "local")
    manifest = read_manifest(out / "ingest")
    assert [i["url"] for i in manifest["inputs"]] == [f"s3://raw/{p.name}" for p in WARCS]
    assert all(i["stamp"].startswith('"') for i in manifest["inputs"])  # S3 ETags are quoted
    if command == "data":
        assert read_manifest(out / "tokenize")["counts"]["tokens"] > 0


def test_etag_decides_what_reruns(s3, tmp_path):
    bucket = s3.bucket()
    first, second = WARCS[:2]
    s3.upload([first], bucket)
    spec, out = [f"s3://{bucket}/*.warc.gz"], tmp_path / "ingest"
    run_ingest(IngestConfig(), spec, out)
    digest = tree_digest(out)
    s3.upload([first], bucket)  # the same bytes again: a new LastModified, the same ETag
    assert run_ingest(IngestConfig(), spec, out).skipped
    s3.client().upload_file(str(second), bucket, first.name)  # changed content under that key
    rerun = run_ingest(IngestConfig(), spec, out)
    assert not rerun.skipped and tree_digest(out) != digest
    assert rerun.counts == run_ingest(IngestConfig(), [str(second)], tmp_path / "want").counts


def test_transient_slowdowns_are_retried(s3, tmp_path):
    bucket = s3.bucket()
    s3.upload(WARCS, bucket)
    # The config's storage options win over AWS_ENDPOINT_URL: reads go through the proxy.
    with FlakyProxy(s3.endpoint, failures=3, match=".warc.gz") as proxy:
        cfg = IngestConfig(storage_options={"s3": {"endpoint_url": proxy.endpoint}})
        result = run_ingest(cfg, [f"s3://{bucket}/*.warc.gz"], tmp_path / "s3")
    assert proxy.failed == 3  # three 503 SlowDown answers, each retried by the S3 client
    assert "unreadable_file" not in result.reasons
    run_ingest(IngestConfig(), [str(p) for p in WARCS], tmp_path / "local")
    assert_same_documents(tmp_path / "s3", tmp_path / "local")


def test_storage_options_are_not_written_to_the_manifest(s3, tmp_path):
    bucket = s3.bucket()
    s3.upload(WARCS[:1], bucket)
    secret = {"s3": {"key": "testing", "secret": "do-not-write-me"}}
    run_ingest(IngestConfig(storage_options=secret), [f"s3://{bucket}/*"], tmp_path / "out")
    assert "do-not-write-me" not in (tmp_path / "out" / "manifest.json").read_text()


def test_missing_bucket_is_a_clear_error_at_once(s3):
    t0 = time.monotonic()
    with pytest.raises(InputError, match="bucket does not exist"):
        resolve_inputs(["s3://no-such-bucket/*.warc.gz"])
    with pytest.raises(InputError, match="bucket does not exist"):
        resolve_inputs(["s3://no-such-bucket/a.warc.gz"])
    assert time.monotonic() - t0 < 10  # not retried: it fails the same way every time


def test_cli_reports_a_missing_bucket_in_one_line(s3, tmp_path):
    spec = "s3://no-such-bucket/*.warc.gz"
    cmd = [sys.executable, "-m", "flows.cli", "ingest", "--input", spec, "--output", str(tmp_path)]
    done = subprocess.run(cmd, cwd=REPO, env=os.environ, capture_output=True, text=True)
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        f"lmpipe: error: input {spec}: The specified bucket does not exist"
    ]


def test_missing_object_is_not_found(s3):
    bucket = s3.bucket()
    with pytest.raises(InputError, match=f"input not found: s3://{bucket}/a.warc.gz"):
        resolve_inputs([f"s3://{bucket}/a.warc.gz"])
    with pytest.raises(InputError, match="input not found"):
        input_fingerprint(f"s3://{bucket}/a.warc.gz")


@pytest.fixture(scope="module")
def locked_store(tmp_path_factory):
    """A second moto server that enforces IAM (moto's INITIAL_NO_AUTH_ACTION_COUNT: only the first
    3 actions go unchecked): a bucket and a user `reader` with keys but no policy. Yields the
    server and the reader's keys."""
    import boto3

    enforced = {"INITIAL_NO_AUTH_ACTION_COUNT": "3"}
    with moto_server(tmp_path_factory.mktemp("moto-auth"), enforced) as s:
        s.client().create_bucket(Bucket="locked")
        iam = boto3.client("iam", endpoint_url=s.endpoint, region_name=REGION, **ADMIN)
        iam.create_user(UserName="reader")
        key = iam.create_access_key(UserName="reader")["AccessKey"]
        yield s, (key["AccessKeyId"], key["SecretAccessKey"])


@pytest.mark.parametrize(
    ("who", "spec", "said"),
    [
        ("reader", "s3://locked/*.warc.gz", "Access Denied"),  # AccessDenied (no policy)
        ("reader", "s3://locked/a.warc.gz", "Forbidden"),  # a HEAD's 403 carries no body
        ("nobody", "s3://locked/*.warc.gz", "does not exist in our records"),  # InvalidAccessKeyId
    ],
)
def test_refused_credentials_are_a_clear_error_at_once(
    s3, locked_store, monkeypatch, who, spec, said
):
    server, (key, secret) = locked_store
    monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key if who == "reader" else "nobody")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)
    t0 = time.monotonic()
    with pytest.raises(InputError) as err:
        resolve_inputs([spec])
    assert time.monotonic() - t0 < 10  # not retried: it fails the same way every time
    message = str(err.value)
    assert message.startswith(f"input {spec}: access denied (")
    assert said in message
    assert message.endswith(
        "check the credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY for s3://,"
        " or `ingest.storage_options`)"
    )


@pytest.mark.parametrize(
    ("url", "package", "extra"),
    [("gs://b/x.warc.gz", "gcsfs", "gcs"), ("az://c/x.warc.gz", "adlfs", "azure")],
)
def test_a_missing_extra_is_named(url, package, extra):
    try:
        __import__(package)
    except ImportError:
        pass
    else:
        pytest.skip(f"{package} is installed")
    proto = url.split("://")[0]
    with pytest.raises(InputError) as err:
        resolve_inputs([url])
    assert str(err.value) == f"reading {proto}:// needs {package}: install lmpipe[{extra}]"


def test_cli_reports_a_missing_extra_in_one_line(tmp_path):
    cmd = [sys.executable, "-m", "flows.cli", "ingest", "--input", "gs://b/*.warc.gz"]
    done = subprocess.run(
        [*cmd, "--output", str(tmp_path)], cwd=REPO, capture_output=True, text=True
    )
    if "gcsfs" in sys.modules or done.returncode == 0:
        pytest.skip("gcsfs is installed")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "lmpipe: error: reading gs:// needs gcsfs: install lmpipe[gcs]"
    ]


@pytest.mark.slow
def test_silent_endpoint_is_a_clear_error_within_bounded_retries(s3, silent_server, monkeypatch):
    """An endpoint that accepts and never answers: each wait is bounded by the timeout and the
    retries are bounded too (3 botocore attempts inside 2 s3fs attempts), then one clear line."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", silent_server)
    t0 = time.monotonic()
    with pytest.raises(InputError) as err:
        resolve_inputs(["s3://raw/a.warc.gz"], timeout=1.0)
    assert time.monotonic() - t0 < 30  # 6 waits of 1 s plus backoff; it was 15 waits
    assert str(err.value) == (
        "input s3://raw/a.warc.gz: no answer from s3://raw/a.warc.gz within 1 s"
        " (`ingest.network_timeout_seconds`)"
    )


@pytest.mark.parametrize("name", ["dump.jsonl.zst", "dump.parquet"])
def test_jsonl_and_parquet_dumps_from_s3(s3, tmp_path, name):
    """The README's `s3://bucket/dump.jsonl.zst`: decompressed in the stream; Parquet is opened
    seekable (range requests). Ids of rows without one hash their location, so payloads, counts and
    reasons are compared."""
    import pyarrow.parquet as pq

    from tests.ingest.test_tabular import LINES, write

    local = tmp_path / name
    if name.endswith(".parquet"):
        rows = [json.loads(line) for line in LINES[:3:2]] + [{"id": "c", "text": "Third."}]
        pq.write_table(pa.Table.from_pylist(rows), local)
    else:
        write(local, "\n".join(LINES).encode())
    [url] = s3.upload([local], s3.bucket())
    got = run_ingest(IngestConfig(), [url], tmp_path / "s3")
    want = run_ingest(IngestConfig(), [str(local)], tmp_path / "local")
    assert (got.counts, got.reasons) == (want.counts, want.reasons)
    texts = [
        sorted(read_shards(d)["raw"].to_pylist()) for d in (tmp_path / "s3", tmp_path / "local")
    ]
    assert texts[0] == texts[1] and texts[0]


def _documents_by_source(out_dir: Path) -> dict[str, list[tuple[str, str]]]:
    """(id, url) of the documents read from each input, by the input's location (`source`)."""
    table = read_shards(out_dir)
    found: dict[str, list[tuple[str, str]]] = {}
    for doc_id, url, source in zip(*(table[c].to_pylist() for c in ("id", "url", "source"))):
        found.setdefault(source, []).append((doc_id, url))
    return {k: sorted(v) for k, v in sorted(found.items())}


def test_keys_with_question_marks_hashes_and_spaces_are_read_whole(s3, tmp_path):
    """Issue 33 row 14: a key `a?b.warc.gz` was cut at `?` (an http query string), so listing
    it or a glob matching it failed the whole ingest. `?`, `#` and spaces are characters of a
    key: each object is read, listed or matched by a glob, under its whole name."""
    jsonl = tmp_path / "docs.jsonl"
    rows = [
        {"id": f"j{i}", "url": f"https://example.org/{i}", "text": "Words. " * 30} for i in (1, 2)
    ]
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    files = {"a?b.warc.gz": WARCS[0], "c#d.jsonl": jsonl, "e f.warc.gz": WARCS[1]}
    bucket = s3.bucket()
    for key, path in files.items():
        s3.client().upload_file(str(path), bucket, key)
    # What `a?b.warc.gz` also matches as a pattern: listed by name, `a?b` is that object alone.
    s3.client().upload_file(str(WARCS[0]), bucket, "axb.warc.gz")
    want = {}
    for key, path in files.items():
        run_ingest(IngestConfig(workers=1), [str(path)], tmp_path / "local" / path.name)
        (docs,) = _documents_by_source(tmp_path / "local" / path.name).values()
        want[f"s3://{bucket}/{key}"] = docs
    assert all(want.values())

    listed = [f"s3://{bucket}/{key}" for key in files]
    globs = [f"s3://{bucket}/a[?]b*", f"s3://{bucket}/c#*.jsonl", f"s3://{bucket}/e *.warc.gz"]
    assert resolve_inputs(listed) == resolve_inputs(globs) == sorted(listed)
    for name, specs in (("listed", listed), ("globbed", globs)):
        result = run_ingest(IngestConfig(workers=1), specs, tmp_path / name)
        assert _documents_by_source(tmp_path / name) == want, name
        assert result.reasons == {}, name
        manifest = read_manifest(tmp_path / name)
        assert [i["url"] for i in manifest["inputs"]] == sorted(listed), name

    # One glob over the bucket takes every object, the decoy too, each under its own name.
    run_ingest(IngestConfig(workers=1), [f"s3://{bucket}/*"], tmp_path / "all")
    assert set(_documents_by_source(tmp_path / "all")) == {*listed, f"s3://{bucket}/axb.warc.gz"}
