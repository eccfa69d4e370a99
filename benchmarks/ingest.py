"""Ingest throughput: the lmpipe stage next to plain read loops over the same files (the floors).

The loops do the least a user would write by hand: iterate every record, parse HTTP headers, read
the payload of responses and decode HTML ones; one with warcio (pure Python parsing), one with
fastwarc (C++, what the stage reads with). The stage also classifies payloads, writes
zstd-compressed Arrow shards, the rejected ledger and the manifest.

    .venv/bin/python -m benchmarks.ingest [--copies 8] [--rounds 3]

Each row is the best of `--rounds` interleaved rounds (the machine is shared: load only slows).
"""

from __future__ import annotations

import resource
import shutil
import time
from pathlib import Path

from fastwarc.warc import ArchiveIterator as FastArchiveIterator
from fastwarc.warc import WarcRecordType
from warcio.archiveiterator import ArchiveIterator

from benchmarks.sample import parse_args, sample_crawl
from pipeline.ingest import IngestConfig, run_ingest

WARCIO, FASTWARC = "warcio loop (floor)", "fastwarc loop"


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


def fastwarc_loop(files: list[Path]) -> int:
    docs = 0
    for path in files:
        with open(path, "rb") as fh:
            for rec in FastArchiveIterator(fh, parse_http=True):
                if rec.record_type != WarcRecordType.response or rec.http_headers is None:
                    continue
                ctype = rec.http_headers.get("Content-Type") or ""
                body = rec.reader.read()
                if ctype.startswith("text/html"):
                    body.decode("utf-8", errors="replace")
                    docs += 1
    return docs


def stage(files: list[Path], out: Path, workers: int) -> int:
    shutil.rmtree(out, ignore_errors=True)
    result = run_ingest(IngestConfig(workers=workers), [str(f) for f in files], out)
    return result.counts["documents"]


def cpu_seconds() -> float:
    """CPU time of this process (all threads) and its finished children (the stage's workers)."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def best_of(runs: dict, rounds: int) -> dict[str, tuple[float, float, int]]:
    """Interleaved rounds, the fastest of each row: (wall s, CPU s, documents)."""
    best: dict[str, tuple[float, float, int]] = {}
    for _ in range(rounds):
        for name, run in runs.items():
            t0, c0 = time.perf_counter(), cpu_seconds()
            docs = run()
            seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
            if name not in best or seconds < best[name][0]:
                best[name] = (seconds, best[name][1] if name in best else cpu, docs)
            best[name] = (best[name][0], min(best[name][1], cpu), docs)
    return best


def main() -> None:
    args = parse_args(8, rounds=(3, "interleaved rounds; best is reported"))
    work, files = sample_crawl("bench-ingest-", args.copies)
    mb = sum(f.stat().st_size for f in files) / 1e6
    records = 721 * args.copies

    runs = {WARCIO: lambda: warcio_loop(files), FASTWARC: lambda: fastwarc_loop(files)}
    for w in (1, 2):
        runs[f"lmpipe ingest, {w} worker(s)"] = lambda w=w: stage(files, work / f"out{w}", w)
    best = best_of(runs, args.rounds)
    print(f"{len(files)} files, {mb:.1f} MB compressed, {records:,} WARC records\n")
    print(
        "| reader | wall s | records/s | MB/s | documents | vs warcio | vs fastwarc "
        "| CPU s | CPU: vs warcio | CPU: vs fastwarc |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, (s, cpu, n) in best.items():
        vs_warcio, vs_fast = best[WARCIO][0] / s, best[FASTWARC][0] / s
        cpu_warcio, cpu_fast = best[WARCIO][1] / cpu, best[FASTWARC][1] / cpu
        print(
            f"| {name} | {s:.2f} | {records / s:,.0f} | {mb / s:.1f} | {n:,} "
            f"| {vs_warcio:.2f}x | {vs_fast:.2f}x "
            f"| {cpu:.2f} | {cpu_warcio:.2f}x | {cpu_fast:.2f}x |"
        )
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
