"""The data stages (ingest, clean, dedup, tokenize) with the run directory on S3 vs on local disk,
both measured in one run, as a ratio per stage.

Both read the same inputs from local disk; only the run directory differs. The S3 side is moto's
standalone server on loopback (tests/s3.py), reached through `AWS_ENDPOINT_URL` and s3fs as a real
bucket is: the ratio is the cost of the object-store path (an upload per committed file, ledger
and manifest reads from the bucket, upstream shards downloaded into the local mirror), not of a
real network.

    .venv/bin/python -m benchmarks.data_s3 [--copies 4] [--workers 2]
"""

from __future__ import annotations

import os
import shutil
import time

from benchmarks.sample import parse_args, sample_crawl
from pipeline.clean import run_clean
from pipeline.config import load_config
from pipeline.core.layout import RunLayout
from pipeline.dedup import run_dedup
from pipeline.ingest import run_ingest
from pipeline.io import mirror
from pipeline.tokenize import run_tokenize
from tests.s3 import moto_server


def timed_stages(cfg, run_dir: str) -> dict[str, tuple[float, dict]]:
    """Seconds and counts of each data stage into `run_dir` (a path or a URL)."""
    run = RunLayout(run_dir)
    calls = {
        "ingest": lambda: run_ingest(cfg.ingest, cfg.inputs, run.ingest),
        "clean": lambda: run_clean(cfg.clean, run.ingest, run.clean),
        "dedup": lambda: run_dedup(cfg.dedup, run.clean, run.dedup),
        "tokenize": lambda: run_tokenize(cfg.tokenize, run.dedup, run.tokenize),
    }
    times = {}
    for stage, call in calls.items():
        t0 = time.perf_counter()
        result = call()
        times[stage] = (time.perf_counter() - t0, result.counts)
    return times


def main() -> None:
    args = parse_args(4, workers=(2, "worker processes of every stage"))
    work, _ = sample_crawl("bench-data-s3-", args.copies)
    inputs = work / "in"
    sets = [f"inputs=[{str(inputs)!r}]".replace("'", '"')]
    sets += [f"{s}.workers={args.workers}" for s in ("ingest", "clean", "dedup", "tokenize")]
    cfg = load_config(None, sets)
    os.environ[mirror.SCRATCH_ENV] = str(work / "mirror")
    try:
        local = timed_stages(cfg, str(work / "local"))
        with moto_server(work) as s3:
            os.environ.update(s3.env)
            on_s3 = timed_stages(cfg, f"s3://{s3.bucket('bench')}/runs/r1")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for stage in local:
        assert on_s3[stage][1] == local[stage][1], (stage, on_s3[stage][1], local[stage][1])
    print(f"{args.copies} copies of the sample WARC, {args.workers} worker(s), one run each\n")
    print("| stage | local disk s | S3 (moto on loopback) s | S3 / local |")
    print("|---|---:|---:|---:|")
    for stage, (local_s, _) in local.items():
        s3_s = on_s3[stage][0]
        print(f"| {stage} | {local_s:.2f} | {s3_s:.2f} | {s3_s / local_s:.2f}x |")
    total_local = sum(t for t, _ in local.values())
    total_s3 = sum(t for t, _ in on_s3.values())
    print(f"| all four | {total_local:.2f} | {total_s3:.2f} | {total_s3 / total_local:.2f}x |")


if __name__ == "__main__":
    main()
