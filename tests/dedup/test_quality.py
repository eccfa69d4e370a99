"""Pair detection quality on a labeled set built from real pages (a slice of the benchmark)."""

from __future__ import annotations

from pipeline.dedup import DedupConfig, run_dedup
from tests.dedup.labeled import (
    build_variants,
    cluster_map,
    ground_truth_sets,
    labeled_pairs,
    score,
    write_clean_run,
)


def test_f1_on_a_labeled_slice_of_real_pages(pages, tmp_path):
    bases = pages[::4]  # ~100 pages: Python docs and the web captures
    variants = build_variants(bases, seed=1)
    pairs = labeled_pairs(bases, variants, ground_truth_sets(bases + variants), seed=1)
    positives = sum(p.jaccard >= 0.75 for p in pairs)
    assert 0.25 * len(pairs) < positives < 0.75 * len(pairs)  # both classes are well represented
    clean = write_clean_run(tmp_path / "clean", bases + variants)
    plain = run_dedup(DedupConfig(workers=1, verify=False), clean, tmp_path / "plain")
    checked = run_dedup(DedupConfig(workers=1, verify=True), clean, tmp_path / "verified")
    lsh = score(pairs, cluster_map(plain.output_dir), 0.75)
    verified = score(pairs, cluster_map(checked.output_dir), 0.75)
    assert lsh["recall"] >= 0.95 and lsh["precision"] >= 0.8, lsh
    assert verified["f1"] >= 0.95 and verified["precision"] >= lsh["precision"], verified
