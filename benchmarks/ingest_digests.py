"""The sha256 of every shard ingest writes for a fixed set of inputs and configs: run it with two
versions of the code and diff the outputs to show a speed change left the shards byte-identical.

    python -m benchmarks.ingest_digests /tmp/digests > new.txt   # from this tree
    (cd /tmp/old-export && python -m benchmarks.ingest_digests /tmp/digests) > old.txt
    diff old.txt new.txt

The same OUT for both: the inputs are copied into OUT/in, and an input's path is in its shards
(`source`) and their names.

Inputs: the sample WARC and JSONL, the real WARC/WET files in `$LMPIPE_REAL_WARCS` (default
/work/shared/data/warc) if present, 7 damaged WARCs and the sample uncompressed; 5 configs.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import sys
from pathlib import Path

from pipeline.ingest import IngestConfig, run_ingest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data" / "sample" / "python-docs.warc.gz"
CONFIGS = {
    "default": IngestConfig(workers=1),
    "demo": IngestConfig(workers=2, shard_max_records=2000),
    "small": IngestConfig(
        workers=1, shard_max_records=97, batch_records=13, max_record_bytes=2**20
    ),
    "lz4": IngestConfig(workers=1, compression="lz4", shard_max_bytes=2**20),
    "none": IngestConfig(workers=1, compression="none"),
}


def damaged_inputs(directory: Path) -> list[Path]:
    """The sample cut, corrupted, padded, re-compressed, uncompressed (the member reader's)."""
    data = SAMPLE.read_bytes()
    head = data[:300_000]  # ends inside a member
    files = {
        "cut_last_member.warc.gz": head,
        "corrupt_member.warc.gz": head[:50_000] + b"\x00" * 10 + head[50_010:],
        "bytes_between_members.warc.gz": data[:874] + b"not gzip" + data[874:200_000],
        "trailing_bytes.warc.gz": data[:150_000] + b"trailing",
        "one_gzip_stream.warc.gz": gzip.compress(gzip.decompress(data)[:3_000_000], mtime=0),
        "not_gzip.warc.gz": gzip.decompress(data[:874]),
        "empty.warc.gz": b"",
        "plain.warc": gzip.decompress(data),
    }
    for name, content in files.items():
        (directory / name).write_bytes(content)
    return [directory / name for name in files]


def main() -> None:
    out = Path(sys.argv[1])
    shutil.rmtree(out, ignore_errors=True)
    (out / "in").mkdir(parents=True)
    real = Path(os.environ.get("LMPIPE_REAL_WARCS", "/work/shared/data/warc"))
    files = []
    for sample in (SAMPLE, SAMPLE.with_name("python-docs-instructions.jsonl")):
        files.append(Path(shutil.copy(sample, out / "in")))
    files += sorted(real.glob("*.gz")) + damaged_inputs(out / "in")
    for name, cfg in CONFIGS.items():
        run_ingest(cfg, [str(f) for f in files], out / name)
    for path in sorted(out.rglob("*.arrow")):
        if "in" not in path.relative_to(out).parts[:1]:
            print(hashlib.sha256(path.read_bytes()).hexdigest(), path.relative_to(out))


if __name__ == "__main__":
    main()
