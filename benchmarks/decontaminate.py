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
    args = parser.parse_args()

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
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
