"""The fast reader (one fastwarc iterator per file) writes exactly what the member reader writes.

`ingest_file` reads a compressed WARC with the fast reader and, at the first sign of damage,
reads it again member by member; either way the shards must be the member reader's, byte for byte.
"""

from __future__ import annotations

import gzip

import pytest

from pipeline.ingest import IngestConfig
from pipeline.ingest.run import _ingest_file, ingest_file
from pipeline.ingest.warc import DamagedWarc, WarcReader
from tests.conftest import REAL_WARCS, SAMPLE_WARC
from tests.helpers import tree_digest

CFG = IngestConfig(workers=1, max_record_bytes=1 << 20)
SAMPLE = SAMPLE_WARC.read_bytes()


def _damaged(kind: str) -> bytes:
    head = SAMPLE[:300_000]  # ends inside a member: a cut last member
    if kind == "cut_last_member":
        return head
    if kind == "corrupt_member":
        return head[:50_000] + b"\x00" * 10 + head[50_010:]
    if kind == "bytes_between_members":
        return SAMPLE[:874] + b"not gzip" + SAMPLE[874:200_000]
    if kind == "trailing_bytes":
        return SAMPLE[:150_000] + b"trailing"
    if kind == "one_gzip_stream":
        return gzip.compress(gzip.decompress(SAMPLE)[:3_000_000])
    if kind == "not_gzip":
        return gzip.decompress(SAMPLE[:874])
    return b""  # empty


def _both_readers(tmp_path, path) -> tuple[dict, dict]:
    for name in ("fast", "members"):
        (tmp_path / name / "rejected").mkdir(parents=True)
        (tmp_path / name / "_progress").mkdir()
    fast = ingest_file(CFG, str(path), tmp_path / "fast")
    members = _ingest_file(CFG, str(path), tmp_path / "members", fast=False)
    assert fast == members
    return tree_digest(tmp_path / "fast"), tree_digest(tmp_path / "members")


@pytest.mark.parametrize("path", [SAMPLE_WARC, *REAL_WARCS], ids=lambda p: p.name)
def test_sound_files_give_the_member_readers_shards(tmp_path, path):
    fast, members = _both_readers(tmp_path, path)
    assert fast == members and fast


@pytest.mark.parametrize(
    "kind",
    [
        "cut_last_member",
        "corrupt_member",
        "bytes_between_members",
        "trailing_bytes",
        "one_gzip_stream",
        "not_gzip",
        "empty",
    ],
)
def test_damaged_files_give_the_member_readers_shards(tmp_path, kind):
    path = tmp_path / f"{kind}.warc.gz"
    path.write_bytes(_damaged(kind))
    fast, members = _both_readers(tmp_path, path)
    assert fast == members and fast


@pytest.mark.parametrize("kind", ["cut_last_member", "corrupt_member", "not_gzip", "empty"])
def test_the_fast_reader_gives_up_on_damage(tmp_path, kind):
    path = tmp_path / f"{kind}.warc.gz"
    path.write_bytes(_damaged(kind))
    with open(path, "rb") as fh, pytest.raises(DamagedWarc):
        list(WarcReader(CFG, str(path), fast=True).read(fh, compressed=True))
