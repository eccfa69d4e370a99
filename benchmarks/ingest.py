"""Ingest throughput: the lmpipe stage next to a plain warcio loop over the same files (the floor).

The warcio loop does the least a user would write by hand: iterate every record, parse HTTP
headers, read and decode the payload of HTML responses. The stage also classifies payloads,
writes zstd-compressed Arrow shards, the rejected ledger and the manifest.

    .venv/bin/python benchmarks/ingest.py [--copies 8]
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from warcio.archiveiterator import ArchiveIterator

from pipeline.ingest import IngestConfig, run_ingest

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "sample" / "python-docs.warc.gz"


def warcio_loop(files: list[Path]) -> int:
    docs = 0
    for path in files:
        with open(path, "rb") as fh:
            for rec in ArchiveIterator(fh):
                if rec.rec_type != "response" or rec.http_headers is None:
                    continue
                ctype = rec.http_headers.get_header("Content-Type") or ""
                body = rec.content_stream().read()
                if ctype.startswith("text/html"):
                    body.decode("utf-8", errors="replace")
                    docs += 1
    return docs


def timed(fn) -> tuple[float, object]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=8, help="copies of the sample to ingest")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    files = []
    for i in range(args.copies):
        files.append(work / f"sample-{i}.warc.gz")
        shutil.copy(SAMPLE, files[-1])
    mb = sum(f.stat().st_size for f in files) / 1e6
    records = 721 * args.copies

    base_s, docs = timed(lambda: warcio_loop(files))
    rows = [("warcio loop (floor)", base_s, docs)]
    for workers in (1, 2):
        cfg = IngestConfig(workers=workers)
        s, res = timed(lambda c=cfg, w=workers: run_ingest(c, [str(work)], work / f"out{w}"))
        rows.append((f"lmpipe ingest, {workers} worker(s)", s, res.counts["documents"]))
    print(f"{len(files)} files, {mb:.1f} MB compressed, {records:,} WARC records\n")
    print("| reader | seconds | records/s | MB/s | documents | speed vs warcio |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, s, n in rows:
        print(
            f"| {name} | {s:.2f} | {records / s:,.0f} | {mb / s:.1f} | {n:,} | {base_s / s:.2f}x |"
        )
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
