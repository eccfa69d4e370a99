"""Dedup speed next to datasketch used the plain way and datatrove's 4-stage MinHash; peak memory.

Part 1 runs three implementations on the same real documents (the labeled set of
benchmarks/dedup_quality.py: 389 real pages and two constructed variants of each), all with word
5-gram shingles and 14 bands x 8 rows:
- lmpipe `run_dedup` (2 worker processes), from clean Arrow shards to curated shards;
- datasketch the plain way, one process: `MinHash.update` per shingle, then
  `MinHashLSH.query` / `insert` per document (a document with a match is a duplicate);
- datatrove's MinHash pipeline (signatures -> buckets -> cluster -> filter, LocalPipelineExecutor
  with 2 workers, its default English word tokenizer and 64-bit xxhash), from JSONL to JSONL.
  datatrove is not a project dependency: it runs from its own venv (`--datatrove-python`), made
  with `python -m venv /tmp/bench-datatrove && /tmp/bench-datatrove/bin/pip install datatrove
  xxhash spacy`.

Part 2 measures the peak RSS of `run_dedup` (the main process and the largest worker) on
synthetic corpora of 10k, 100k and 1M documents (words drawn from the real pages' word
frequencies, 10 % near-duplicates), and on 100k documents ten times longer.

Run times are the best of `--repeat` interleaved runs (other load only slows a run down).

    .venv/bin/python -m benchmarks.dedup [--repeat 2] [--sizes 10000 100000 1000000]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pyarrow as pa

from pipeline.core.stage import fingerprint, write_manifest
from pipeline.dedup import DedupConfig, run_dedup
from tests.dedup.labeled import CLEAN_SCHEMA, Doc, build_variants, load_pages, write_clean_run

REPO = Path(__file__).resolve().parents[1]
SOURCES = [REPO / "data" / "sample" / "python-docs.warc.gz", REPO / "tests" / "data" / "warc"]
DATATROVE_PYTHON = "/tmp/bench-datatrove/bin/python"

DATATROVE_SCRIPT = """
import json, sys, time
from datatrove.executor.local import LocalPipelineExecutor
from datatrove.pipeline.dedup.minhash import (MinhashConfig, MinhashDedupBuckets,
    MinhashDedupCluster, MinhashDedupFilter, MinhashDedupSignature)
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter

src, work, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
cfg = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8)
tasks = len([p for p in __import__("os").listdir(src) if p.endswith(".jsonl")])
stages = {
    "signatures": ([JsonlReader(src), MinhashDedupSignature(f"{work}/sigs", config=cfg)], tasks),
    "buckets": ([MinhashDedupBuckets(f"{work}/sigs", f"{work}/buckets", config=cfg)], 14),
    "cluster": ([MinhashDedupCluster(f"{work}/buckets", f"{work}/remove", config=cfg)], 1),
    "filter": ([JsonlReader(src), MinhashDedupFilter(f"{work}/remove",
                exclusion_writer=JsonlWriter(f"{work}/removed", compression=None)),
                JsonlWriter(f"{work}/out", compression=None)], tasks),
}
seconds = {}
for name, (pipeline, n) in stages.items():
    t0 = time.perf_counter()
    LocalPipelineExecutor(pipeline, tasks=n, workers=min(workers, n),
                          logging_dir=f"{work}/logs/{name}").run()
    seconds[name] = time.perf_counter() - t0
count = lambda d: sum(sum(1 for _ in open(p)) for p in __import__("glob").glob(f"{work}/{d}/*"))
print(json.dumps({"seconds": seconds, "removed": count("removed"), "kept": count("out")}))
"""


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


# -- part 1: the same real documents through three implementations --------------------------


def real_corpus(work: Path) -> list[Doc]:
    bases = load_pages([str(s) for s in SOURCES], work)
    return bases + build_variants(bases, seed=0)


def run_lmpipe(clean: Path, out: Path, verify: bool) -> dict:
    """Whole-stage wall time, and the time until the signature phase finished."""
    marks: dict[str, float] = {}
    t0 = time.perf_counter()

    def progress(done, total, counts):
        marks.setdefault(f"signatures={counts.get('signatures')}", time.perf_counter() - t0)

    cfg = DedupConfig(workers=2, verify=verify)
    seconds, result = timed(lambda: run_dedup(cfg, clean, out, progress))
    shards = result.counts["shards"]
    return {
        "signatures": marks[f"signatures={shards}"],
        "whole": seconds,
        "removed": result.counts["rejected"],
    }


def plain_shingles(text: str) -> list[bytes]:
    words = re.findall(r"\w+", text.lower())
    return [" ".join(words[i : i + 5]).encode() for i in range(max(len(words) - 4, 1))]


def run_datasketch(docs: list[Doc]) -> dict:
    from datasketch import MinHash, MinHashLSH

    def signatures():
        out = []
        for doc in docs:
            m = MinHash(num_perm=112, seed=1)
            for shingle in plain_shingles(doc.text):
                m.update(shingle)
            out.append((doc.id, m))
        return out

    sig_s, sigs = timed(signatures)

    def lsh_pass():
        lsh, removed = MinHashLSH(num_perm=112, params=(14, 8)), 0
        for key, m in sigs:
            if lsh.query(m):
                removed += 1
            else:
                lsh.insert(key, m)
        return removed

    lsh_s, removed = timed(lsh_pass)
    return {"signatures": sig_s, "whole": sig_s + lsh_s, "removed": removed}


def run_datatrove(docs: list[Doc], work: Path, python: str) -> dict:
    src = work / "jsonl"
    src.mkdir(parents=True)
    for part in range(2):
        with open(src / f"part-{part}.jsonl", "w") as fh:
            for doc in docs[part::2]:
                fh.write(json.dumps({"id": doc.id, "text": doc.text}) + "\n")
    cmd = [python, "-c", DATATROVE_SCRIPT, str(src), str(work / "datatrove"), "2"]
    seconds, proc = timed(lambda: subprocess.run(cmd, capture_output=True, text=True))
    if proc.returncode != 0:
        raise RuntimeError(f"datatrove failed:\n{proc.stderr[-3000:]}")
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    stages = report["seconds"]
    return {
        "signatures": stages["signatures"],
        "whole": sum(stages.values()),
        "removed": report["removed"],
    }


# -- part 2: peak memory on synthetic corpora -------------------------------------------------


def word_distribution(docs: list[Doc], top: int = 50_000) -> tuple[np.ndarray, np.ndarray]:
    counts = Counter(w for doc in docs for w in (doc.text or "").split()).most_common(top)
    vocab = np.array([w for w, _ in counts], dtype=object)
    freq = np.array([c for _, c in counts], dtype=np.float64)
    return vocab, freq / freq.sum()


def synthetic_texts(rng, vocab, probs, count: int, words: int) -> list[str]:
    """`count` texts of ~`words` words; 10 % are an earlier text with two words replaced."""
    lengths = rng.integers(words // 2, words * 3 // 2, count)
    drawn = vocab[rng.choice(len(vocab), size=int(lengths.sum()), p=probs)]
    ends = np.cumsum(lengths)
    texts = [" ".join(drawn[e - n : e]) for e, n in zip(ends, lengths)]
    for i in np.flatnonzero(rng.random(count) < 0.1)[1:]:
        copy = texts[rng.integers(0, i)].split(" ")
        for j in rng.integers(0, len(copy), 2):
            copy[j] = vocab[rng.integers(0, len(vocab))]
        texts[i] = " ".join(copy)
    return texts


def write_synthetic(clean: Path, vocab, probs, n_docs: int, words: int, shard_docs=5_000):
    clean.mkdir(parents=True)
    rng = np.random.default_rng(n_docs + words)
    for shard, lo in enumerate(range(0, n_docs, shard_docs)):
        count = min(shard_docs, n_docs - lo)
        texts = synthetic_texts(rng, vocab, probs, count, words)
        columns = {
            "id": [f"doc-{lo + i}" for i in range(count)],
            "url": [f"https://example.org/{lo + i}" for i in range(count)],
            "source": ["synthetic"] * count,
            "fetch_date": pa.array([0] * count, pa.timestamp("s", tz="UTC")),
            "content_type": ["text/plain"] * count,
            "text": texts,
            "language": ["en"] * count,
            "language_score": pa.array([1.0] * count, pa.float32()),
            "pii_emails": pa.array([0] * count, pa.int32()),
        }
        table = pa.table(columns, schema=CLEAN_SCHEMA)
        options = pa.ipc.IpcWriteOptions(compression="zstd")
        with pa.ipc.new_file(
            str(clean / f"part-{shard:05d}.arrow"), CLEAN_SCHEMA, options=options
        ) as w:
            w.write_table(table, max_chunksize=1000)
    write_manifest(clean, stage="clean", output_fingerprint=fingerprint([n_docs, words]))


def status_mb(pid: int | str, key: str) -> float:
    """A memory field of /proc/<pid>/status in MB (0 when the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class ChildPeakMonitor(threading.Thread):
    """Polls the peak RSS (VmHWM) of this process's children (the worker pool) every 20 ms.

    getrusage's ru_maxrss is useless here: Linux carries it over fork + exec, so every spawned
    worker would report at least its parent's size."""

    def __init__(self):
        super().__init__(daemon=True)
        self.peak, self.me = 0.0, str(os.getpid())

    def run(self) -> None:
        while True:
            for stat in Path("/proc").glob("[0-9]*/stat"):
                try:
                    ppid = stat.read_text().rsplit(")", 1)[1].split()[1]
                except OSError:
                    continue
                if ppid == self.me:
                    self.peak = max(self.peak, status_mb(stat.parent.name, "VmHWM"))
            time.sleep(0.02)


def measure(clean: str, out: str) -> None:
    """Run in a fresh process: prints wall time and peak RSS (MB) of this process (VmHWM, reset
    by exec) and of the largest worker process as JSON."""
    monitor = ChildPeakMonitor()
    monitor.start()
    baseline = status_mb("self", "VmRSS")
    seconds, result = timed(lambda: run_dedup(DedupConfig(workers=2), clean, out))
    report = {"seconds": seconds, "baseline": baseline, "main": status_mb("self", "VmHWM")}
    print(json.dumps(report | {"worker": monitor.peak, "counts": result.counts}))


def memory_rows(work: Path, docs: list[Doc], sizes: list[int]) -> list[dict]:
    vocab, probs = word_distribution(docs)
    runs = [(n, 100) for n in sizes] + [(min(100_000, max(sizes)), 1_000)]
    rows = []
    for n, words in runs:
        clean = work / f"synthetic-{n}-{words}" / "clean"
        gen_s, _ = timed(lambda n=n, w=words, c=clean: write_synthetic(c, vocab, probs, n, w))
        text_mb = sum(p.stat().st_size for p in clean.glob("*.arrow")) / 2**20
        cmd = [
            sys.executable,
            "-m",
            "benchmarks.dedup",
            "--measure",
            str(clean),
            str(clean.parent / "dedup"),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-3000:])
        report = json.loads(proc.stdout.strip().splitlines()[-1])
        rows.append({"documents": n, "words": words, "shards_mb": text_mb, **report})
        print(
            f"  measured {n:,} documents x ~{words} words: {report['seconds']:.0f} s",
            file=sys.stderr,
        )
    return rows


def print_memory(rows: list[dict]) -> None:
    """One row per corpus; `marginal` is (RSS - RSS of the previous, smaller corpus) / extra
    documents: the slope of a linear model, free of the fixed cost of Python and libraries."""
    print(
        "| documents | words/doc | input (MB, zstd) | wall s | peak RSS main (MB) "
        "| main above baseline (MB) | marginal bytes/doc | peak RSS largest worker (MB) | removed |"
    )
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    previous = None
    for r in rows:
        above = r["main"] - r["baseline"]
        marginal = "-"
        if previous and r["words"] == previous["words"]:
            extra = (r["main"] - previous["main"]) * 2**20
            marginal = f"{extra / (r['documents'] - previous['documents']):.0f}"
        print(
            f"| {r['documents']:,} | {r['words']} | {r['shards_mb']:.0f} | {r['seconds']:.0f} "
            f"| {r['main']:.0f} | {above:.0f} | {marginal} | {r['worker']:.0f} "
            f"| {r['counts']['rejected']:,} |"
        )
        previous = r


BASE = "lmpipe run_dedup (default: verify on)"


def print_speed(docs: list[Doc], rows: dict[str, dict]) -> None:
    mb = sum(len((d.text or "").encode()) for d in docs) / 1e6
    base = rows[BASE]
    print(f"{len(docs):,} documents, {mb:.1f} MB of text (best of the repeats)\n")
    print(
        "| implementation | signatures s | signatures docs/s | whole dedup s | whole docs/s "
        "| lmpipe default speed-up (signatures) | lmpipe default speed-up (whole) | removed |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(
            f"| {name} | {r['signatures']:.1f} | {len(docs) / r['signatures']:,.0f} "
            f"| {r['whole']:.1f} | {len(docs) / r['whole']:,.0f} "
            f"| {r['signatures'] / base['signatures']:.1f}x | {r['whole'] / base['whole']:.1f}x "
            f"| {r['removed']} |"
        )


def best_of(runs: list[dict]) -> dict:
    """The fastest of repeated runs (other load on the machine only ever slows a run down)."""
    return {
        "signatures": min(r["signatures"] for r in runs),
        "whole": min(r["whole"] for r in runs),
        "removed": runs[0]["removed"],
    }


def one_round(work: Path, clean: Path, docs: list[Doc], args, i: int) -> dict[str, dict]:
    rows = {
        BASE: run_lmpipe(clean, work / f"lmpipe-{i}", verify=True),
        "lmpipe run_dedup (verify off: FineWeb as is)": run_lmpipe(
            clean, work / f"lmpipe-plain-{i}", verify=False
        ),
        "datasketch plain (update per shingle, LSH query/insert)": run_datasketch(docs),
    }
    if not args.skip_datatrove:
        python = args.datatrove_python
        rows["datatrove MinHash, 4 stages"] = run_datatrove(docs, work / f"dt-{i}", python)
    return rows


def speed_rows(work: Path, docs: list[Doc], args) -> dict[str, dict]:
    """Each implementation `args.repeat` times, interleaved so that load hits them alike."""
    clean = write_clean_run(work / "clean", docs, shard_rows=100)
    runs: dict[str, list[dict]] = {}
    for i in range(args.repeat):
        for name, row in one_round(work, clean, docs, args, i).items():
            runs.setdefault(name, []).append(row)
    return {name: best_of(r) for name, r in runs.items()}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 100_000, 1_000_000])
    ap.add_argument("--datatrove-python", default=DATATROVE_PYTHON)
    ap.add_argument("--skip-datatrove", action="store_true")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each implementation (best)")
    ap.add_argument("--measure", nargs=2, metavar=("CLEAN", "OUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        return measure(*args.measure)
    work = Path(tempfile.mkdtemp(prefix="bench-dedup-"))
    docs = real_corpus(work)
    print_speed(docs, speed_rows(work, docs, args))
    if args.sizes:
        print()
        print_memory(memory_rows(work, docs, args.sizes))


if __name__ == "__main__":
    main()
