"""Ingest from S3 vs the same files on local disk: one run each, as a ratio.

The S3 side is moto's standalone server on loopback (tests/s3.py starts it as its own process),
reached through `AWS_ENDPOINT_URL` and s3fs exactly as a real bucket would be; so the ratio is the
cost of the object-store path (HTTP requests, s3fs buffering, a server in Python on the same two
cores), not of a real network.

    .venv/bin/python -m benchmarks.ingest_s3 [--copies 8] [--workers 2]
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from benchmarks.sample import parse_args, sample_crawl
from pipeline.ingest import IngestConfig, run_ingest
from tests.s3 import moto_server


def timed_ingest(cfg: IngestConfig, inputs: list[str], out: Path) -> tuple[float, dict]:
    t0 = time.perf_counter()
    result = run_ingest(cfg, inputs, out)
    return time.perf_counter() - t0, result.counts


def main() -> None:
    args = parse_args(8, workers=(2, "ingest worker processes"))
    work, files = sample_crawl("bench-ingest-s3-", args.copies)
    local = work / "in"
    mb = sum(f.stat().st_size for f in files) / 1e6
    cfg = IngestConfig(workers=args.workers)
    try:
        with moto_server(work) as s3:
            os.environ.update(s3.env)
            bucket = s3.bucket("bench")
            s3.upload(files, bucket, prefix="raw/")
            s3_s, s3_counts = timed_ingest(cfg, [f"s3://{bucket}/raw/*.warc.gz"], work / "out-s3")
        local_s, local_counts = timed_ingest(cfg, [str(local)], work / "out-local")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert s3_counts == local_counts, (s3_counts, local_counts)
    print(f"{len(files)} files, {mb:.1f} MB compressed, {args.workers} worker(s), one run each\n")
    print("| input | seconds | MB/s | documents |")
    print("|---|---:|---:|---:|")
    for name, s in (("local disk", local_s), ("S3 (moto on loopback)", s3_s)):
        print(f"| {name} | {s:.2f} | {mb / s:.1f} | {local_counts['documents']:,} |")
    print(f"\nS3 / local wall time: {s3_s / local_s:.2f}x")


if __name__ == "__main__":
    main()
