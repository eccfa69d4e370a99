"""Data-stage scale-out: documents/s of ingest + clean with 1 and 2 workers, local processes vs Ray.

The same `--copies` copies of the sample WARC (350 HTML pages each) go through ingest and clean
with `parallel.executor: process` (a process pool) and `parallel.executor: ray` (a local Ray
started here with 2 CPUs; on a cluster, `parallel.ray_address`). Ray's own start-up is timed
separately and not counted (a cluster is already up). `--rounds` interleaves the four runs that
many times and keeps each one's best (the machine may be shared). The output shards are
compared: the executor must not change the result.

    .venv/bin/python -m benchmarks.scaleout [--copies 8] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from pipeline.clean import CleanConfig, run_clean
from pipeline.config import load_config
from pipeline.exec.parallel import ParallelConfig
from pipeline.ingest import run_ingest
from tests.helpers import tree_digest

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "python-docs.warc.gz"


def run_once(
    inputs: list[str], out: Path, workers: int, clean_cfg: CleanConfig, parallel: ParallelConfig
) -> dict:
    demo = load_config(REPO / "configs" / "demo.yaml")
    ingest_cfg = demo.ingest.model_copy(update={"workers": workers})
    clean_cfg = clean_cfg.model_copy(update={"workers": workers})
    t0 = time.perf_counter()
    ing = run_ingest(ingest_cfg, inputs, out / "ingest", parallel=parallel)
    t1 = time.perf_counter()
    cln = run_clean(clean_cfg, out / "ingest", out / "clean", parallel=parallel)
    t2 = time.perf_counter()
    return {
        "docs": ing.counts["documents"],
        "kept": cln.counts.get("documents", 0),
        "ingest_s": t1 - t0,
        "clean_s": t2 - t1,
        "digest": tree_digest(out / "clean"),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds; best of each")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lmpipe-scaleout-"))
    try:
        inputs = []
        for i in range(args.copies):
            dst = tmp / "in" / f"copy-{i}.warc.gz"
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(SAMPLE, dst)
            inputs.append(str(dst))
        clean_cfg = load_config(REPO / "configs" / "demo.yaml").clean
        import ray

        t0 = time.perf_counter()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        ray_start = time.perf_counter() - t0
        best: dict[tuple[str, int], dict] = {}
        for _ in range(args.rounds):
            for executor in ("process", "ray"):
                parallel = ParallelConfig(executor=executor)
                for workers in (1, 2):
                    out = tmp / f"{executor}-{workers}"
                    shutil.rmtree(out, ignore_errors=True)
                    result = run_once(inputs, out, workers, clean_cfg, parallel)
                    print(f"{executor} {workers}: clean {result['clean_s']:.1f} s", flush=True)
                    key = (executor, workers)
                    if key not in best or result["clean_s"] < best[key]["clean_s"]:
                        best[key] = result
        rows = [(ex, w, r) for (ex, w), r in best.items()]
        ray.shutdown()
        load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"\n{args.copies} x {SAMPLE.name} ({350 * args.copies} HTML pages); Ray start-up "
              f"{ray_start:.1f} s (not counted); load average after: {load}\n")  # fmt: skip
        print("| executor | workers | documents | kept | ingest s | clean s | docs/s (both) |")
        print("|---|---:|---:|---:|---:|---:|---:|")
        for ex, w, r in rows:
            rate = r["docs"] / (r["ingest_s"] + r["clean_s"])
            print(f"| {ex} | {w} | {r['docs']} | {r['kept']} | {r['ingest_s']:.1f} "
                  f"| {r['clean_s']:.1f} | {rate:.1f} |")  # fmt: skip
        base = {(ex, w): r["docs"] / (r["ingest_s"] + r["clean_s"]) for ex, w, r in rows}
        scale = base[("ray", 2)] / base[("ray", 1)]
        vs_pool = base[("ray", 2)] / base[("process", 2)]
        print(f"\nRay 2 workers / 1 worker: {scale:.2f}x; Ray / process pool, 2: {vs_pool:.2f}x")
        clean = {(ex, w): r["clean_s"] for ex, w, r in rows}
        print(
            f"clean alone, Ray / process pool (time ratio inverted): 1 worker "
            f"{clean[('process', 1)] / clean[('ray', 1)]:.2f}x, 2 workers "
            f"{clean[('process', 2)] / clean[('ray', 2)]:.2f}x"
        )
        same = len({json.dumps(r["digest"], sort_keys=True) for _, _, r in rows}) == 1
        print(f"identical clean shards across executors and worker counts: {same}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
