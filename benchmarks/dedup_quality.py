"""Precision / recall / F1 of near-duplicate pair detection on a labeled set built from real pages.

The set (tests/dedup/labeled.py documents how): the 350 Python docs pages of the bundled
sample and the tests' web captures as base pages, two constructed variants of each (exact copy,
other navigation, paragraphs removed, numbers changed, words edited), and non-duplicate pairs
(each page with its most similar other page, random pages). Ground truth of a pair: the true
Jaccard of the word 5-gram shingle sets >= `--threshold`. The whole set goes through `run_dedup`
as clean shards; a pair is detected when both documents end in the same cluster.

    .venv/bin/python -m benchmarks.dedup_quality [--threshold 0.75]   # from the repo root

(`-m`: the labeled set is `tests/dedup/labeled.py`, imported as `tests.dedup.labeled`.)
"""

from __future__ import annotations

import argparse
import tempfile
from collections import defaultdict
from pathlib import Path

from pipeline.dedup import DedupConfig, run_dedup
from tests.dedup.labeled import (
    build_variants,
    cluster_map,
    ground_truth_sets,
    labeled_pairs,
    load_pages,
    score,
    write_clean_run,
)

REPO = Path(__file__).resolve().parents[1]
SOURCES = [REPO / "data" / "sample" / "python-docs.warc.gz", REPO / "tests" / "data" / "warc"]
BUCKETS = [(0.0, 0.5), (0.5, 0.7), (0.7, 0.75), (0.75, 0.8), (0.8, 0.9), (0.9, 1.0), (1.0, 1.01)]


def by_bucket(pairs, clusters: dict[str, str]) -> list[tuple[str, int, int]]:
    """(Jaccard range, pairs, detected) rows."""
    rows = []
    for lo, hi in BUCKETS:
        inside = [p for p in pairs if lo <= p.jaccard < hi]
        found = sum(p.a in clusters and clusters.get(p.a) == clusters.get(p.b) for p in inside)
        label = "1.0 (identical sets)" if lo == 1.0 else f"[{lo:.2f}, {hi:.2f})"
        rows.append((label, len(inside), found))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--threshold", type=float, default=0.75, help="ground-truth Jaccard cut")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="dedup-quality-"))
    bases = load_pages([str(s) for s in SOURCES], work)
    variants = build_variants(bases, seed=0)
    pairs = labeled_pairs(bases, variants, ground_truth_sets(bases + variants), seed=0)
    write_clean_run(work / "clean", bases + variants)
    kinds = defaultdict(int)
    for p in pairs:
        kinds[p.kind] += 1
    positives = sum(p.jaccard >= args.threshold for p in pairs)
    print(f"{len(bases)} pages, {len(variants)} variants, {len(pairs)} labeled pairs")
    print(f"({positives} with Jaccard >= {args.threshold}): {dict(kinds)}\n")
    results = {}
    for verify in (False, True):
        cfg = DedupConfig(verify=verify, verify_threshold=args.threshold, workers=2)
        out = work / f"dedup-verify-{verify}"
        run_dedup(cfg, work / "clean", out)
        results[verify] = (score(pairs, cluster_map(out), args.threshold), cluster_map(out))
    print("| dedup config | precision | recall | F1 | TP | FP | FN | TN |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for verify, (s, _) in results.items():
        name = "14x8 LSH" + (f" + verify Jaccard >= {args.threshold}" if verify else "")
        print(
            f"| {name} | {s['precision']:.3f} | {s['recall']:.3f} | {s['f1']:.3f} | {s['tp']} "
            f"| {s['fp']} | {s['fn']} | {s['tn']} |"
        )
    print(
        "\n| pair kind | pairs | Jaccard >= threshold | median Jaccard | detected (LSH + verify) |"
    )
    print("|---|---:|---:|---:|---:|")
    verified = results[True][1]
    for kind in sorted(kinds):
        inside = [p for p in pairs if p.kind == kind]
        found = sum(p.a in verified and verified.get(p.a) == verified.get(p.b) for p in inside)
        median = sorted(p.jaccard for p in inside)[len(inside) // 2]
        above = sum(p.jaccard >= args.threshold for p in inside)
        print(f"| {kind} | {len(inside)} | {above} | {median:.2f} | {found} |")
    print("\n| true Jaccard | pairs | detected (LSH) | detected (LSH + verify) |")
    print("|---|---:|---:|---:|")
    plain, checked = by_bucket(pairs, results[False][1]), by_bucket(pairs, results[True][1])
    for (label, n, found), (_, _, found_v) in zip(plain, checked):
        print(f"| {label} | {n} | {found} | {found_v} |")


if __name__ == "__main__":
    main()
