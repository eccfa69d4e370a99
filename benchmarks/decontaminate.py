"""Decontaminate-stage throughput beside the clean stage's and a plain-Python 13-gram check.

    .venv/bin/python benchmarks/decontaminate.py [--items 5000] [--rounds 2]

Input: the bundled sample (350 pages) ingested and cleaned once (the clean stage timed with one
worker: its documents per second per core); then, on that clean output, rows:

- `decontaminate`: the stage with one worker, against `--items` evaluation items (questions of the
  bundled instruction set with their words shuffled, so that few pages match: the cost is the
  scan, not the rejections), index build included;
- `plain python`: what a user would write by hand (lm-evaluation-harness's janitor does the same):
  the items' 13-grams of normalized words as a set of tuples, each document's 13-grams looked up.

Both find the same contaminated documents (checked). Each round runs the rows in turn.

    .venv/bin/python benchmarks/decontaminate.py --large-items 200000 --max-index-mb 8

adds the memory bound's comparison: `--large-items` synthetic items (25 shuffled words each, plus
50 windows of the pages themselves, so some documents are rejected) against the same documents,
once with the sorted index and once with `max_index_mb` forcing the Bloom filter, each in a fresh
process (one worker, in process): wall seconds of the whole stage, the process's peak RSS, the
index file, and the peak memory of building the index again and loading it (tracemalloc).
Both must reject the same documents naming the same items (checked).
"""

from __future__ import annotations

import sys

sys.path[:] = [p for p in sys.path if p not in ("", __file__.rsplit("/", 1)[0])]

import argparse  # noqa: E402
import json  # noqa: E402
import random  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "data" / "sample" / "python-docs.warc.gz"
INSTRUCTIONS = REPO / "data" / "sample" / "python-docs-instructions.jsonl"


def eval_items(n: int) -> list[str]:
    rng = random.Random(0)
    records = [json.loads(line) for line in INSTRUCTIONS.open()]
    questions = [
        m["content"] for r in records for m in r.get("messages", []) if m["role"] == "user"
    ]
    pool = " ".join(questions).split()
    return [" ".join(rng.sample(pool, 25)) for _ in range(n)]


def plain_python(texts: list[str], items: list[str]) -> set[int]:
    from pipeline.decontaminate.ngrams import words

    grams = set()
    for item in items:
        ws = words(item)
        grams.update(tuple(ws[i : i + 13]) for i in range(len(ws) - 12))
    hits = set()
    for k, text in enumerate(texts):
        ws = words(text)
        if any(tuple(ws[i : i + 13]) in grams for i in range(len(ws) - 12)):
            hits.add(k)
    return hits


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--large-items", type=int, default=0)
    parser.add_argument("--max-index-mb", type=float, default=8.0)
    parser.add_argument("--one", nargs=4, help=argparse.SUPPRESS)  # clean_dir eval out max_mb
    args = parser.parse_args()
    if args.one:
        return one_path(*args.one)

    import pyarrow.dataset as ds

    from pipeline.clean import CleanConfig, run_clean
    from pipeline.config import load_config
    from pipeline.decontaminate import DecontaminateConfig, run_decontaminate
    from pipeline.ingest import IngestConfig, run_ingest

    work = Path(tempfile.mkdtemp(prefix="bench-decont-"))
    demo = load_config(REPO / "configs" / "demo.yaml")
    run_ingest(IngestConfig(workers=1), [str(SAMPLE)], work / "ingest")
    clean_cfg = CleanConfig.model_validate({**demo.clean.model_dump(), "workers": 1})
    start = time.perf_counter()
    run_clean(clean_cfg, work / "ingest", work / "clean")
    clean_s = time.perf_counter() - start
    shards = sorted(str(p) for p in (work / "clean").glob("*.arrow"))
    texts = ds.dataset(shards, format="arrow").to_table()["text"].to_pylist()
    items = eval_items(args.items)
    (work / "eval.jsonl").write_text("".join(json.dumps({"question": q}) + "\n" for q in items))
    cfg = DecontaminateConfig(enabled=True, eval_sets=[str(work / "eval.jsonl")], workers=1)
    rows: dict[str, list[float]] = {"decontaminate": [], "plain python": []}
    for _ in range(args.rounds):
        shutil.rmtree(work / "out", ignore_errors=True)
        start = time.perf_counter()
        result = run_decontaminate(cfg, work / "clean", work / "out")
        rows["decontaminate"].append(time.perf_counter() - start)
        start = time.perf_counter()
        hits = plain_python(texts, items)
        rows["plain python"].append(time.perf_counter() - start)
        assert result.counts["rejected"] == len(hits), (result.counts, len(hits))
    n = len(texts)
    print(f"{n} clean documents, {args.items} evaluation items, {len(hits)} contaminated")
    print("| row | seconds (best) | documents/s per core |")
    print("|---|---:|---:|")
    print(f"| clean (1 worker) | {clean_s:.2f} | {n / clean_s:,.0f} |")
    for name, times in rows.items():
        print(f"| {name} | {min(times):.2f} | {n / min(times):,.0f} |")
    ratio = [p / d for d, p in zip(rows["decontaminate"], rows["plain python"])]
    print("plain python / decontaminate, per round: " + ", ".join(f"{r:.2f}x" for r in ratio))
    if args.large_items:
        sorted_vs_bloom(work, texts, args.large_items, args.max_index_mb)
    shutil.rmtree(work)


def sorted_vs_bloom(work: Path, texts: list[str], n: int, max_mb: float) -> None:
    """The stage on `n` synthetic items: sorted index vs Bloom filter, each in a fresh process."""
    import subprocess

    rng = random.Random(1)
    items = eval_items(n)
    for text in rng.sample([t for t in texts if len(t.split()) > 200], 50):
        start = rng.randrange(len(text.split()) - 30)
        items.append(" ".join(text.split()[start : start + 25]))
    (work / "large.jsonl").write_text("".join(json.dumps({"question": q}) + "\n" for q in items))
    print(f"\n{len(items)} evaluation items against {len(texts)} documents")
    print("| index | seconds | peak RSS (MiB) | index file (MiB) | build peak (MiB) | rejected |")
    print("|---|---:|---:|---:|---:|---:|")
    rejected = {}
    small = "".join(json.dumps({"question": q}) + "\n" for q in items[-50:])
    (work / "small.jsonl").write_text(small)
    runs = (("baseline", "small", 1e6), ("sorted", "large", 1e6), ("bloom", "large", max_mb))
    for name, data, mb in runs:  # baseline: the 50 page windows only (the stage's own memory)
        out = work / f"large-{name}"
        cmd = [sys.executable, __file__, "--one", str(work / "clean"), str(work / f"{data}.jsonl")]
        got = json.loads(
            subprocess.run(
                [*cmd, str(out), str(mb)], capture_output=True, text=True, check=True
            ).stdout.splitlines()[-1]
        )
        rejected[name] = got.pop("rejected_rows")
        cells = [f"{got['seconds']:.1f}", f"{got['rss_mib']:.0f}", f"{got['index_mib']:.1f}"]
        cells.append(f"{got['traced_mib']:.1f}")
        print(f"| {name} ({got['index']}) | " + " | ".join(cells) + f" | {len(rejected[name])} |")
    assert rejected["sorted"] == rejected["bloom"], "the Bloom filter changed the rejections"
    assert {i for i, _ in rejected["sorted"]} == {i for i, _ in rejected["baseline"]}


def index_peak(cfg, eval_file: Path, out: Path) -> int:
    """Peak bytes allocated (tracemalloc: Python and numpy) to build the index again and load
    it as a worker does: the index's own memory, apart from the shards'."""
    import tracemalloc

    from pipeline.decontaminate.run import _build_index, _load_index

    (out / "_work").mkdir(exist_ok=True)  # the stage removed it
    tracemalloc.start()
    path, _, _ = _build_index(cfg, [eval_file], None, ([], "text"), out)
    _load_index.__wrapped__(path, 0, 0, path.endswith("bloom.npz"))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak


def one_path(clean_dir: str, eval_file: str, out: str, max_mb: str) -> None:
    """One stage run in this process; prints seconds, peak RSS and the rejections as JSON."""
    import resource

    import pyarrow.dataset as ds

    from pipeline.decontaminate import DecontaminateConfig, run_decontaminate

    cfg = DecontaminateConfig(
        enabled=True, eval_sets=[eval_file], workers=1, max_index_mb=float(max_mb)
    )
    start = time.perf_counter()
    result = run_decontaminate(cfg, Path(clean_dir), Path(out))
    seconds = time.perf_counter() - start
    traced = index_peak(cfg, Path(eval_file), Path(out))
    rows = ds.dataset(
        sorted(str(p) for p in (Path(out) / "rejected").glob("*.arrow")), format="arrow"
    )
    print(
        json.dumps(
            {
                "index": result.manifest["eval_index"],
                "seconds": seconds,
                "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                "index_mib": result.counts["eval_index_bytes"] / 2**20,
                "traced_mib": traced / 2**20,
                "rejected_rows": sorted(
                    zip(*(rows.to_table()[c].to_pylist() for c in ("id", "detail")))
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
